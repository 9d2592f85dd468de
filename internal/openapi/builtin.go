package openapi

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// builtinGzip is the built-in definitions, generated (see generate.go).
//
//go:embed builtin/definitions.json.gz
var builtinGzip []byte

// BuiltinDefinition is one generated definition as it is embedded.
type BuiltinDefinition struct {
	// Schema is the definition in OpenAPI v3, with refs to
	// #/definitions/<name>.
	Schema spec.Schema `json:"schema"`
	// V2 is what OpenAPI v2 says instead, when it differs (int-or-string,
	// quantities: v3 says oneOf).
	V2           *spec.Schema `json:"v2,omitempty"`
	Dependencies []string     `json:"dependencies,omitempty"`
}

// EncodeBuiltin turns openapi-gen's output into the embedded form. It is
// used by go generate (builtin/dump), not by the server.
func EncodeBuiltin(get common.GetOpenAPIDefinitions) ([]byte, error) {
	defs := get(func(name string) spec.Ref {
		return spec.MustCreateRef("#/definitions/" + common.EscapeJsonPointer(name))
	})
	out := make(map[string]BuiltinDefinition, len(defs))
	for name, d := range defs {
		b := BuiltinDefinition{Schema: d.Schema, Dependencies: d.Dependencies}
		if v, ok := d.Schema.Extensions[common.ExtensionV2Schema]; ok {
			v2, ok := v.(spec.Schema)
			if !ok {
				return nil, fmt.Errorf("%s: the v2 schema is a %T", name, v)
			}
			b.V2 = &v2
			ext := spec.Extensions{}
			for k, v := range d.Schema.Extensions {
				if k != common.ExtensionV2Schema {
					ext[k] = v
				}
			}
			if len(ext) == 0 {
				ext = nil
			}
			b.Schema.Extensions = ext
		}
		sort.Strings(b.Dependencies)
		out[name] = b
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func builtinJSON() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(builtinGzip))
	if err != nil {
		return nil, fmt.Errorf("openapi: the built-in definitions: %w", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("openapi: the built-in definitions: %w", err)
	}
	return data, nil
}

// builtinNames lists the built-in definitions.
func builtinNames() (map[string]bool, error) {
	data, err := builtinJSON()
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("openapi: the built-in definitions: %w", err)
	}
	names := make(map[string]bool, len(raw))
	for k := range raw {
		names[k] = true
	}
	return names, nil
}

// builtinDefinitions decodes the built-in definitions for OpenAPI v2 or
// v3 (refs to #/components/schemas/): those named by roots and those they
// depend on, or all when roots is nil. Each call returns fresh values.
func builtinDefinitions(v2 bool, roots []string) (map[string]common.OpenAPIDefinition, error) {
	data, err := builtinJSON()
	if err != nil {
		return nil, err
	}
	if !v2 {
		data = bytes.ReplaceAll(data, []byte(`"$ref":"#/definitions/`), []byte(`"$ref":"#/components/schemas/`))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("openapi: the built-in definitions: %w", err)
	}
	if roots == nil {
		for name := range raw {
			roots = append(roots, name)
		}
	}
	out := map[string]common.OpenAPIDefinition{}
	for len(roots) > 0 {
		name := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		msg, ok := raw[name]
		if _, done := out[name]; done || !ok {
			continue
		}
		var d BuiltinDefinition
		if err := json.Unmarshal(msg, &d); err != nil {
			return nil, fmt.Errorf("openapi: the built-in definition %s: %w", name, err)
		}
		s := d.Schema
		if v2 && d.V2 != nil {
			s = *d.V2
		}
		out[name] = common.OpenAPIDefinition{Schema: s, Dependencies: d.Dependencies}
		roots = append(roots, d.Dependencies...)
	}
	return out, nil
}
