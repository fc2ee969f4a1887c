package server

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// nodeDecoder decodes a yaml.Node tree onto a Go value that already holds the
// defaults, walking the yaml tags itself: yaml.v3's KnownFields errors carry
// neither the key path nor, for nested keys, a useful line. Every error it
// returns is a *ConfigError, and it records the line of every path it visits
// so errors found later (Validate) can be placed in the file.
type nodeDecoder struct {
	file  string
	lines map[string]int // "forward.upstreams[1]" -> line
	// dotted maps the dotted spelling of a map entry's path, which stage
	// validators use ("forward.zones.corp.example."), to ours
	// (`forward.zones["corp.example."]`).
	dotted map[string]string
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *nodeDecoder) errorf(n *yaml.Node, path, format string, args ...any) error {
	return &ConfigError{File: d.file, Line: n.Line, Field: path, Err: fmt.Errorf(format, args...)}
}

// decode sets v (addressable) from n. path is the dotted key path of v.
func (d *nodeDecoder) decode(n *yaml.Node, path string, v reflect.Value) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	null := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if v.Type() == durationType {
		return d.duration(n, path, v)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.decode(n, path, v.Elem())
	case reflect.Struct:
		if null {
			return nil // "section:" with nothing below keeps the defaults
		}
		if n.Kind != yaml.MappingNode {
			return d.errorf(n, path, "must be a mapping, got %s", describe(n))
		}
		return d.structure(n, path, v)
	case reflect.Slice:
		if null {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return d.errorf(n, path, "must be a list, got %s", describe(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = e.Line
			if err := d.decode(e, p, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if null {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return d.errorf(n, path, "must be a mapping, got %s", describe(n))
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := fmt.Sprintf("%s[%q]", path, k.Value)
			if err := d.key(k, p, seen); err != nil {
				return err
			}
			d.lines[p] = k.Line
			d.dotted[path+"."+k.Value] = p
			e := reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(val, p, e); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
		return nil
	}
	if null {
		return d.errorf(n, path, "missing value")
	}
	if n.Kind != yaml.ScalarNode {
		return d.errorf(n, path, "must be %s, got %s", kindName(v.Kind()), describe(n))
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		return d.errorf(n, path, "must be %s, got %q", kindName(v.Kind()), n.Value)
	}
	return nil
}

// structure decodes a mapping onto the struct v, refusing unknown and
// duplicate keys.
func (d *nodeDecoder) structure(n *yaml.Node, path string, v reflect.Value) error {
	fields := make(map[string]reflect.Value)
	collectFields(v, fields)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if err := d.key(k, p, seen); err != nil {
			return err
		}
		f, ok := fields[k.Value]
		if !ok {
			if s := suggest(k.Value, fields); s != "" {
				return d.errorf(k, p, "unknown field (did you mean %q?)", s)
			}
			return d.errorf(k, p, "unknown field")
		}
		d.lines[p] = k.Line
		if err := d.decode(val, p, f); err != nil {
			return err
		}
	}
	return nil
}

// key checks that a mapping key is a plain scalar seen once.
func (d *nodeDecoder) key(k *yaml.Node, path string, seen map[string]int) error {
	if k.Kind != yaml.ScalarNode {
		return d.errorf(k, path, "keys must be plain strings, got %s", describe(k))
	}
	if k.Value == "<<" {
		return d.errorf(k, path, "merge keys (<<) are not supported")
	}
	if first, dup := seen[k.Value]; dup {
		return d.errorf(k, path, "duplicate key (first set on line %d)", first)
	}
	seen[k.Value] = k.Line
	return nil
}

// collectFields maps the yaml names of v's fields to the fields, flattening
// ",inline" structs.
func collectFields(v reflect.Value, into map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			collectFields(v.Field(i), into)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		into[name] = v.Field(i)
	}
}

// duration decodes "5s"-style values. yaml.v3 refuses a bare integer for a
// time.Duration with a message naming Go types; ours says what to write.
func (d *nodeDecoder) duration(n *yaml.Node, path string, v reflect.Value) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return d.errorf(n, path, `must be a duration such as "5s", got %s`, describe(n))
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		return d.errorf(n, path, `must be a duration with a unit, such as "%ss", got %s`, n.Value, n.Value)
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		return d.errorf(n, path, `must be a duration such as "5s" or "1m30s", got %q`, n.Value)
	}
	v.SetInt(int64(dur))
	return nil
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return strconv.Quote(n.Value)
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a " + k.String()
}

// suggest returns the known field closest to an unknown key, if it is close
// enough to be a typo.
func suggest(key string, fields map[string]reflect.Value) string {
	best, bestD := "", 3
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name
		}
		if dist := editDistance(strings.ToLower(key), strings.ToLower(name)); dist < bestD || (dist == bestD && name < best) {
			best, bestD = name, dist
		}
	}
	if bestD > 2 || bestD >= len(key) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ConfigError is an invalid configuration: the file, the line (0 when not
// known) and the key path of the offending value.
type ConfigError struct {
	File  string
	Line  int
	Field string // "forward.upstreams[1]"; "" for syntax errors
	Err   error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ErrForwardingLoop marks an upstream that is one of our own listen
// addresses.
var ErrForwardingLoop = errors.New("forwarding loop")
