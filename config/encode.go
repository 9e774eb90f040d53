package config

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// Encode writes docs as a YAML stream, the inverse of Parse: documents
// separated by "---", fields in the order apiVersion, kind, metadata, spec,
// spec keys sorted. Metadata.Version is written when set, so that a document
// read, edited and applied again is checked against the version it was read
// at.
func Encode(docs []Document) ([]byte, error) {
	if len(docs) == 0 {
		return []byte{}, nil
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, d := range docs {
		n, err := documentNode(&d)
		if err != nil {
			return nil, err
		}
		if err := enc.Encode(n); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func documentNode(d *Document) (*yaml.Node, error) {
	md := mapNode()
	addField(md, "name", strNode(d.Metadata.Name))
	if len(d.Metadata.Labels) > 0 {
		labels := mapNode()
		keys := make([]string, 0, len(d.Metadata.Labels))
		for k := range d.Metadata.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			addField(labels, k, strNode(d.Metadata.Labels[k]))
		}
		addField(md, "labels", labels)
	}
	if d.Metadata.Version != 0 {
		addField(md, "version", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(d.Metadata.Version, 10)})
	}
	n := mapNode()
	addField(n, "apiVersion", strNode(d.APIVersion))
	addField(n, "kind", strNode(d.Kind))
	addField(n, "metadata", md)
	if len(bytes.TrimSpace(d.Spec)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(d.Spec))
		dec.UseNumber()
		var spec any
		if err := dec.Decode(&spec); err != nil {
			return nil, d.invalid(FieldErrors{{Path: "spec", Reason: "invalid JSON: " + err.Error()}})
		}
		if spec != nil {
			addField(n, "spec", treeNode(spec))
		}
	}
	return n, nil
}

func mapNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func addField(m *yaml.Node, k string, v *yaml.Node) { m.Content = append(m.Content, strNode(k), v) }

// treeNode turns a JSON tree (with json.Number) into YAML nodes.
func treeNode(v any) *yaml.Node {
	switch v := v.(type) {
	case map[string]any:
		n := mapNode()
		for _, k := range sortedKeys(v) {
			addField(n, k, treeNode(v[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, x := range v {
			n.Content = append(n.Content, treeNode(x))
		}
		return n
	case string:
		return strNode(v)
	case json.Number:
		tag := "!!float"
		if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(v)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}
