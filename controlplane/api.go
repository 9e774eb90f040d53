package controlplane

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/etcd"
	_ "github.com/sluicerpc/sluice/policy" // registers the TrafficPolicy kind
	_ "github.com/sluicerpc/sluice/route"  // registers the RouteRule and Lane kinds
)

// maxRulesBody bounds a POST /api/v1/rules body.
const maxRulesBody = 4 << 20

func (p *Plane) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/services", p.listServices)
	mux.HandleFunc("GET /api/v1/services/{name}/instances", p.listInstances)
	mux.HandleFunc("GET /api/v1/rules", p.listRules)
	mux.HandleFunc("POST /api/v1/rules", p.applyRules)
	return mux
}

// Service is one entry of GET /api/v1/services.
type Service struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
}

// Rule is one document of GET /api/v1/rules, or one applied by POST.
type Rule struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   config.Metadata `json:"metadata"`
	Spec       json.RawMessage `json:"spec,omitempty"`
}

// APIError is the body of every error answer.
type APIError struct {
	Error string `json:"error"`
	// Fields lists what is wrong with rejected documents.
	Fields []FieldError `json:"fields,omitempty"`
}

// FieldError is one rejected field: which document, which field, why.
type FieldError struct {
	Document string `json:"document,omitempty"` // Kind/name, or "document N"
	Path     string `json:"path"`
	Reason   string `json:"reason"`
	Line     int    `json:"line,omitempty"`
}

func (p *Plane) services(r *http.Request) (map[string][]discovery.Instance, error) {
	return etcd.List(r.Context(), p.cli, etcd.DefaultPrefix)
}

func (p *Plane) listServices(w http.ResponseWriter, r *http.Request) {
	all, err := p.services(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err, nil)
		return
	}
	out := make([]Service, 0, len(all))
	for name, ins := range all {
		out = append(out, Service{Name: name, Instances: len(ins)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (p *Plane) listInstances(w http.ResponseWriter, r *http.Request) {
	all, err := p.services(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err, nil)
		return
	}
	ins, ok := all[r.PathValue("name")]
	if !ok {
		writeError(w, http.StatusNotFound, errors.New("controlplane: no instances of service "+r.PathValue("name")), nil)
		return
	}
	writeJSON(w, http.StatusOK, ins)
}

func (p *Plane) listRules(w http.ResponseWriter, r *http.Request) {
	snap, err := p.store.Get(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err, nil)
		return
	}
	out := []Rule{}
	for _, e := range snap.All() {
		out = append(out, rule(e.Doc))
	}
	writeJSON(w, http.StatusOK, out)
}

func rule(d config.Document) Rule {
	return Rule{APIVersion: d.APIVersion, Kind: d.Kind, Metadata: d.Metadata, Spec: d.Spec}
}

// applyRules applies the documents in the body, all or none: 200 with the
// applied documents, 400 naming every bad field, 409 on a version conflict.
func (p *Plane) applyRules(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRulesBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, err, nil)
		return
	}
	docs, err := config.Parse(body)
	if err == nil && len(docs) == 0 {
		err = errors.New("controlplane: no documents in the request")
	}
	if err == nil {
		_, err = p.store.Apply(r.Context(), docs)
	}
	switch {
	case err == nil:
		out := make([]Rule, len(docs))
		snap, gerr := p.store.Get(r.Context())
		for i, d := range docs {
			if gerr == nil {
				if cur, _, ok := snap.Get(d.Kind, d.Metadata.Name); ok {
					d = cur
				}
			}
			out[i] = rule(d)
		}
		writeJSON(w, http.StatusOK, out)
	case errors.Is(err, config.ErrConflict):
		writeError(w, http.StatusConflict, err, nil)
	default:
		writeError(w, http.StatusBadRequest, err, fieldErrors(err))
	}
}

// fieldErrors flattens every *config.InvalidError in err.
func fieldErrors(err error) []FieldError {
	var out []FieldError
	var walk func(error)
	walk = func(err error) {
		var ie *config.InvalidError
		if errors.As(err, &ie) {
			doc := config.Key{Kind: ie.Kind, Name: ie.Name}.String()
			if ie.Kind == "" && ie.Name == "" {
				doc = "document"
			}
			for _, f := range ie.Fields {
				out = append(out, FieldError{Document: doc, Path: f.Path, Reason: f.Reason, Line: f.Line})
			}
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			walk(e)
		}
	} else {
		walk(err)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error, fields []FieldError) {
	writeJSON(w, code, APIError{Error: err.Error(), Fields: fields})
}
