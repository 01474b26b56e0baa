package mssqltest

import (
	"fmt"
	"strconv"
	"strings"
)

// facts are what a SELECT can see about the server and the session.
type facts struct {
	props         map[string]value // SERVERPROPERTY names, upper case
	globals       map[string]value // @@ names, upper case
	controlServer bool
}

// evalSelect evaluates a parsed SELECT list into one row.
func evalSelect(items []selectItem, f facts) ([]column, []value, error) {
	cols := make([]column, len(items))
	vals := make([]value, len(items))
	for i, it := range items {
		v, err := evalExpr(it.e, f)
		if err != nil {
			return nil, nil, err
		}
		c := column{name: it.alias, maxLen: 4000}
		switch x := v.(type) {
		case int64:
			c.isInt = true
		case string:
			if it.e.op == "cast" {
				c.maxLen = it.e.castLen
			}
			if r := []rune(x); len(r) > c.maxLen {
				v = string(r[:c.maxLen])
			}
		case nil:
			c.isInt = isIntExpr(it.e)
			if it.e.op == "cast" && !it.e.castInt {
				c.maxLen = it.e.castLen
			}
		}
		cols[i], vals[i] = c, v
	}
	return cols, vals, nil
}

// isIntExpr tells the column type of an expression that evaluated to NULL.
func isIntExpr(e *expr) bool {
	switch e.op {
	case "null", "int", "perms":
		return true
	case "cast":
		return e.castInt
	}
	return false
}

func evalExpr(e *expr, f facts) (value, error) {
	switch e.op {
	case "null":
		return nil, nil
	case "int":
		return e.n, nil
	case "str":
		return e.s, nil
	case "global":
		return f.globals[e.s], nil
	case "prop":
		return f.props[strings.ToUpper(e.s)], nil
	case "perms":
		if f.controlServer {
			return int64(1), nil
		}
		switch strings.ToUpper(strings.Join(strings.Fields(e.s), " ")) {
		case "CONTROL SERVER", "ALTER ANY LOGIN", "VIEW SERVER STATE", "ALTER ANY DATABASE":
			return int64(0), nil
		}
		return nil, nil
	case "cast":
		v, err := evalExpr(e.arg, f)
		if err != nil || v == nil {
			return v, err
		}
		if e.castInt {
			switch x := v.(type) {
			case int64:
				return x, nil
			case string:
				n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 32)
				if err != nil {
					return nil, &sqlError{err: Error{Number: 245, State: 1, Class: 16,
						Message: fmt.Sprintf("Conversion failed when converting the nvarchar value '%s' to data type int.", x)}}
				}
				return n, nil
			}
		}
		if n, ok := v.(int64); ok {
			return strconv.FormatInt(n, 10), nil
		}
		return v, nil
	}
	return nil, fmt.Errorf("mssqltest: unknown expression %q", e.op)
}
