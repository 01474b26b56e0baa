package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree into a Config by the yaml tags, so every
// problem can name its key and line.
type decoder struct {
	file  string
	lines map[string]int
	errs  errs
}

// decodeYAML decodes data (the contents of file) over c. An empty document
// leaves c as it is.
func decodeYAML(file string, data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return syntaxError(file, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return &Error{File: file, Line: next.Line, Problem: "a second YAML document",
			Fix: "keep the whole configuration in one document (remove the extra \"---\")"}
	case !errors.Is(err, io.EOF):
		return syntaxError(file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return &Error{File: file, Line: root.Line, Problem: "the top level is not a mapping",
			Fix: "start with keys such as \"destinations:\" (see docs/configuration.md)"}
	}
	d := &decoder{file: file, lines: c.lines}
	d.value(root, reflect.ValueOf(c).Elem(), nil)
	return d.errs.join()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml parse error into an *Error with its line.
func syntaxError(file string, err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: file, Line: line, Problem: "invalid YAML: " + msg,
		Fix: "fix the syntax (indent with spaces, one key per line)", Err: err}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (d *decoder) fail(n *yaml.Node, segs []string, problem, fix string) {
	d.errs.add(&Error{File: d.file, Line: n.Line, Key: display(segs), Problem: problem, Fix: fix})
}

// value decodes n into v, the value at segs.
func (d *decoder) value(n *yaml.Node, v reflect.Value, segs []string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	t := v.Type()
	switch {
	case isLeaf(t):
		d.leaf(n, v, segs)
	case t.Kind() == reflect.Pointer:
		// A section that is present is allocated even when empty or null.
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(n, v.Elem(), segs)
	case t.Kind() == reflect.Struct:
		d.mapping(n, v, segs)
	case t.Kind() == reflect.Slice:
		d.sequence(n, v, segs)
	default:
		d.fail(n, segs, fmt.Sprintf("cannot decode into %s", t), "")
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, segs []string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, segs, "expected a mapping (key: value lines), found "+kindName(n),
			"indent the keys of "+display(segs)+" under it")
		return
	}
	keys := fieldKeys(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		p := append(append([]string(nil), segs...), key)
		if key == "<<" {
			d.fail(kn, p, "merge keys are not supported", "write the keys out")
			continue
		}
		if first, dup := seen[key]; dup {
			d.fail(kn, p, fmt.Sprintf("duplicate key (first set on line %d)", first), "keep one of them")
			continue
		}
		seen[key] = kn.Line
		f, _, ok := fieldByKey(v, key)
		if !ok {
			d.fail(kn, p, "unknown key", didYouMean(key, keys,
				"valid keys here: "+quoteList(keys)))
			continue
		}
		d.lines[display(p)] = kn.Line
		d.value(vn, f, p)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, segs []string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, segs, "expected a list (lines starting with \"- \"), found "+kindName(n), "")
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := append(append([]string(nil), segs...), strconv.Itoa(i))
		d.lines[display(p)] = item.Line
		d.value(item, out.Index(i), p)
	}
	v.Set(out)
}

// leaf decodes a scalar (or, for a list of strings, a sequence of scalars).
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, segs []string) {
	t := v.Type()
	if t.Kind() == reflect.Slice {
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, segs, "expected a list, found "+kindName(n),
				"write it as [a, b] or as lines starting with \"- \"")
			return
		}
		list := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				d.fail(item, append(segs, strconv.Itoa(i)), "expected a single value, found "+kindName(item), "")
				return
			}
			list = append(list, item.Value)
		}
		v.Set(reflect.ValueOf(list))
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(n, segs, "expected a single value, found "+kindName(n), "")
		return
	}
	if isNull(n) {
		v.Set(reflect.Zero(t))
		return
	}
	switch {
	case t == durationType:
		if err := setString(v, n.Value); err != nil {
			d.fail(n, segs, err.Error(), "")
		}
	case t.Kind() == reflect.Bool:
		if n.Tag != "!!bool" {
			d.fail(n, segs, fmt.Sprintf("%q is not a boolean", n.Value), "use true or false")
			return
		}
		_ = setString(v, n.Value)
	case t.Kind() == reflect.Int:
		var i int
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			d.fail(n, segs, fmt.Sprintf("%q is not a whole number", n.Value), "write digits only, e.g. 3650")
			return
		}
		v.SetInt(int64(i))
	default:
		v.SetString(n.Value)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}
