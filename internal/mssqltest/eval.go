package mssqltest

import (
	"fmt"
	"strconv"
	"strings"
)

// facts are what a SELECT can see about the server and the session.
type facts struct {
	props   map[string]value // SERVERPROPERTY names, upper case
	globals map[string]value // @@ names, upper case
	login   Login
	// hasDB tells whether a database exists (HAS_PERMS_BY_NAME on a
	// database securable is NULL for a missing one).
	hasDB func(string) bool
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

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// isIntExpr tells the column type of an expression that evaluated to NULL.
func isIntExpr(e *expr) bool {
	switch e.op {
	case "null", "int", "perms", "role":
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
		name := strings.ToUpper(strings.Join(strings.Fields(e.s), " "))
		if strings.EqualFold(e.class, "DATABASE") {
			// CONTROL on a database: through CONTROL SERVER or ownership.
			if f.hasDB == nil || !f.hasDB(e.securable) || name != "CONTROL" {
				return nil, nil
			}
			return boolInt(f.login.canControl(e.securable)), nil
		}
		if name == "ADMINISTER BULK OPERATIONS" {
			return boolInt(f.login.administerBulk()), nil
		}
		if f.login.controlServer() {
			return int64(1), nil
		}
		switch name {
		case "CONTROL SERVER", "ALTER ANY LOGIN", "VIEW SERVER STATE", "ALTER ANY DATABASE":
			return int64(0), nil
		}
		return nil, nil
	case "role":
		// IS_SRVROLEMEMBER: 1 or 0 for a fixed server role, NULL for a
		// name that is no role.
		switch strings.ToLower(e.s) {
		case "sysadmin":
			return boolInt(f.login.Sysadmin), nil
		case "bulkadmin":
			return boolInt(f.login.BulkAdmin), nil
		case "serveradmin", "securityadmin", "processadmin", "setupadmin", "diskadmin", "dbcreator", "public":
			return boolInt(f.login.Sysadmin || strings.EqualFold(e.s, "public")), nil
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
