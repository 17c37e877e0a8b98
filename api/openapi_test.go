package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Every route the server registers must be described in openapi.yaml, and
// the document must not describe routes that do not exist.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	var registered []string
	for _, r := range routes() {
		key := r.method + " " + r.path
		registered = append(registered, key)
		if !documented[key] {
			t.Errorf("route %s is missing from openapi.yaml", key)
		}
	}
	for key := range documented {
		if !slices.Contains(registered, key) {
			t.Errorf("openapi.yaml documents %s, which the server does not serve", key)
		}
	}
}

// FuzzDecodeBody: arbitrary bodies never panic and either decode or produce
// an error of the API's shape.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{"user":"a","code":"123456"}`, `{"user":`, ``, `[]`, `{"user":"a"} {}`, `{"code":1}`, "\x00", `{"user":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req struct {
			User   string `json:"user"`
			Code   string `json:"code"`
			Method string `json:"method,omitempty"`
		}
		err := DecodeBody(body, &req, false)
		if err == nil {
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			return
		}
		ae, ok := err.(*apiError)
		if !ok || ae.code == "" || ae.msg == "" || ae.status != 400 {
			t.Fatalf("error %T %v is not a 400 API error", err, err)
		}
	})
}
