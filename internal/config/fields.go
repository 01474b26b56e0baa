package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// This file derives every settable key from the yaml tags of Config, so the
// YAML decoder, Set and the environment overrides share one table.

var durationType = reflect.TypeFor[Duration]()

// tagOf returns the yaml key of a struct field, "" when it has none or "-".
func tagOf(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// fieldKeys returns the yaml keys of struct type t in declaration order.
func fieldKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := tagOf(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// fieldByKey returns the field of struct value v whose yaml key is key.
func fieldByKey(v reflect.Value, key string) (reflect.Value, reflect.StructField, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if tagOf(t.Field(i)) == key {
			return v.Field(i), t.Field(i), true
		}
	}
	return reflect.Value{}, reflect.StructField{}, false
}

// isLeaf reports whether a value of type t is set from one string: a
// scalar, a Duration or a list of strings.
func isLeaf(t reflect.Type) bool {
	switch {
	case t == durationType:
		return true
	case t.Kind() == reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int:
		return true
	}
	return false
}

// templates lists every leaf key of t as path segments, with "*" standing
// for a list index: [destinations * retention days].
func templates(t reflect.Type) [][]string {
	var out [][]string
	var walk func(t reflect.Type, prefix []string)
	walk = func(t reflect.Type, prefix []string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			k := tagOf(f)
			if k == "" {
				continue
			}
			p := append(slices.Clone(prefix), k)
			ft := f.Type
			switch {
			case isLeaf(ft):
				out = append(out, p)
			case ft.Kind() == reflect.Slice:
				walk(ft.Elem(), append(p, "*"))
			default:
				walk(ft, p)
			}
		}
	}
	walk(t, nil)
	return out
}

// display renders segments as a key for messages: destinations[1].bucket.
func display(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if _, err := strconv.Atoi(s); err == nil || s == "*" {
			b.WriteString("[" + s + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// splitPath accepts "destinations.0.path" and "destinations[0].path".
func splitPath(path string) []string {
	path = indexBrackets.Replace(path)
	return strings.FieldsFunc(path, func(r rune) bool { return r == '.' })
}

// indexBrackets turns "destinations[0]" into "destinations.0" (built once:
// splitPath runs for every configuration key on every start).
var indexBrackets = strings.NewReplacer("[", ".", "]", "")

// errIndex is returned by locate when a list index is out of range.
var errIndex = errors.New("index out of range")

// locate walks root (a pointer to a struct) along segs to a leaf, allocating
// nil sections on the way and appending a list item when the index equals
// the length. It fails on unknown keys, non-leaves and larger indexes.
func locate(root reflect.Value, segs []string) (reflect.Value, error) {
	v := root
	for i, s := range segs {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			f, _, ok := fieldByKey(v, s)
			if !ok {
				return reflect.Value{}, unknownPath(root.Type(), segs)
			}
			v = f
		case reflect.Slice:
			if isLeaf(v.Type()) {
				return reflect.Value{}, unknownPath(root.Type(), segs)
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return reflect.Value{}, unknownPath(root.Type(), segs)
			}
			switch {
			case n == v.Len():
				v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
			case n > v.Len():
				return reflect.Value{}, fmt.Errorf("%w: %s: there are %d, so the next one is %d",
					errIndex, display(segs[:i+1]), v.Len(), v.Len())
			}
			v = v.Index(n)
		default:
			return reflect.Value{}, unknownPath(root.Type(), segs)
		}
	}
	if !isLeaf(v.Type()) {
		return reflect.Value{}, unknownPath(root.Type(), segs)
	}
	return v, nil
}

func unknownPath(t reflect.Type, segs []string) error {
	var known []string
	for _, tp := range templates(t) {
		known = append(known, strings.Join(fillIndex(tp, segs), "."))
	}
	return errors.New("unknown key; " + didYouMean(strings.Join(segs, "."), known,
		"see docs/configuration.md for the keys"))
}

// fillIndex replaces "*" in tp with the index used at the same place in
// segs, else "0", so suggestions read like what the user typed.
func fillIndex(tp, segs []string) []string {
	out := slices.Clone(tp)
	for i, s := range out {
		if s != "*" {
			continue
		}
		out[i] = "0"
		if i < len(segs) {
			if _, err := strconv.Atoi(segs[i]); err == nil {
				out[i] = segs[i]
			}
		}
	}
	return out
}

// setString parses s into leaf v: strings as is, bools and ints strictly,
// durations with ParseDuration, lists split on commas.
func setString(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(d))
		return nil
	case v.Kind() == reflect.Slice:
		var list []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a boolean; use true or false", s)
		}
		v.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(int64(n))
	default:
		return fmt.Errorf("cannot set a %s from text", v.Type())
	}
	return nil
}
