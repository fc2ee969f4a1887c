package server

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/clusterdns/clusterdns/kubeindex"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultConfigName is the name errors and logs use for the embedded default.
const DefaultConfigName = "(embedded default.yaml)"

// DefaultYAML returns the embedded default configuration file: a local
// caching resolver on 127.0.0.1:5353 forwarding to /etc/resolv.conf.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Loader loads configuration files and applies the command-line overrides to
// each, so a reload sees the same overrides as the start did.
type Loader struct {
	// Listen, when non-empty, replaces the file's listen addresses (-listen).
	Listen []string
	// Kubeconfig, when set, becomes kubernetes.kubeconfig and turns the
	// cluster index on (-kubeconfig).
	Kubeconfig string
}

// LoadConfig reads, decodes and validates the file at path.
func LoadConfig(path string) (*Config, error) { return Loader{}.Load(path) }

// ParseConfig decodes and validates data; name is the file name errors use.
func ParseConfig(name string, data []byte) (*Config, error) { return Loader{}.Parse(name, data) }

// Load reads, decodes and validates the file at path; "" loads the embedded
// default.
func (l Loader) Load(path string) (*Config, error) {
	if path == "" {
		return l.Parse(DefaultConfigName, defaultYAML)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return l.Parse(path, data)
}

// Parse decodes data strictly onto the defaults, applies the overrides and
// validates the result. Every error is a *ConfigError naming name, the line
// and the key path.
func (l Loader) Parse(name string, data []byte) (*Config, error) {
	root, err := parseDocument(name, data)
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	if hasKey(root, "kubernetes") {
		k := kubeindex.Default()
		cfg.Kubernetes = &k
	}
	d := &nodeDecoder{file: name, lines: make(map[string]int), dotted: make(map[string]string)}
	if err := d.decode(root, "", reflect.ValueOf(&cfg).Elem()); err != nil {
		return nil, err
	}
	v := &validator{nodeDecoder: d}
	if len(l.Listen) > 0 {
		cfg.Listen = append([]string(nil), l.Listen...)
		v.flags = map[string]string{"listen": "-listen"}
	}
	if l.Kubeconfig != "" {
		if cfg.Kubernetes == nil {
			k := kubeindex.Default()
			cfg.Kubernetes = &k
		}
		cfg.Kubernetes.Kubeconfig = l.Kubeconfig
	}
	if err := v.validate(&cfg); err != nil {
		return nil, err
	}
	cfg.name = name
	return &cfg, nil
}

// parseDocument returns the top-level mapping of the single document in
// data.
func parseDocument(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: name, Err: errors.New("empty configuration: expected a mapping of settings")}
		}
		return nil, syntaxError(name, data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, &ConfigError{File: name, Line: line, Err: errors.New("a second YAML document: the file must hold exactly one")}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(name, data, err)
	}
	root := doc.Content[0]
	for root.Kind == yaml.AliasNode {
		root = root.Alias
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, &ConfigError{File: name, Line: root.Line, Err: errors.New("empty configuration: expected a mapping of settings")}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: name, Line: root.Line, Err: fmt.Errorf("the document must be a mapping of settings, got %s", describe(root))}
	}
	return root, nil
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return true
		}
	}
	return false
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into a ConfigError. yaml.v3 omits
// the line when the problem is on the first one. Tabs in indentation get
// their own message: YAML forbids them and the parser's words do not say so.
func syntaxError(name string, data []byte, err error) error {
	line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	for i, text := range strings.Split(string(data), "\n") {
		if i+1 > line+1 {
			break
		}
		indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
		if strings.Contains(indent, "\t") {
			return &ConfigError{File: name, Line: i + 1, Err: errors.New("tab characters must not be used for indentation")}
		}
	}
	return &ConfigError{File: name, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
}
