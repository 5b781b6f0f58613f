package fhir

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"

	"smartgate/internal/fhir/index"
	"smartgate/internal/problem"
)

// docref serves the US Core $docref operation
// (http://hl7.org/fhir/us/core/OperationDefinition/docref) over the
// DocumentReferences the server holds: the patient's documents whose
// context period overlaps [start, end], of the given types. smartgate does
// not generate documents on demand, so on-demand=true finds nothing new
// and, without parameters, the result is the patient's stored documents
// rather than a freshly generated CCD.
func (a *API) docref(w http.ResponseWriter, r *http.Request, c *caller) (err error) {
	in := r.URL.Query()
	// A refusal is recorded as a failure, as for a search.
	recorded := false
	defer func() {
		if err != nil && !recorded {
			a.record(r.Context(), c, "fhir.operation", "failure", auditDetail("operation", "docref", "patient", in.Get("patient")))
		}
	}()
	if r.Method == http.MethodPost {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch ct {
		case "application/x-www-form-urlencoded":
			if err := r.ParseForm(); err != nil {
				return problem.New(problem.InvalidRequest, "the form body of $docref could not be read")
			}
			in = r.Form
		default:
			body, err := readBody(r)
			if err != nil {
				return err
			}
			in, err = parametersToValues(body)
			if err != nil {
				return err
			}
		}
	}
	patient := in.Get("patient")
	if patient == "" {
		return problem.New(problem.InvalidRequest, "$docref needs the patient parameter (the id of the Patient), e.g. DocumentReference/$docref?patient=123")
	}
	q := url.Values{"patient": {patient}}
	for _, p := range []struct{ name, prefix string }{{"start", "ge"}, {"end", "le"}} {
		v := in.Get(p.name)
		if v == "" {
			continue
		}
		if _, _, err := index.DateRange(v); err != nil {
			return problem.New(problem.InvalidRequest, "$docref parameter %q must be a FHIR dateTime such as 2024-01-31 or 2024-01-31T12:00:00Z, got %q", p.name, clip(v))
		}
		q.Add("period", p.prefix+v)
	}
	if types := in["type"]; len(types) > 0 {
		for _, t := range types {
			q.Add("type", t)
		}
	}
	if v := in.Get("on-demand"); v == "true" {
		q.Set("_id", "on-demand-documents-are-not-generated")
	}
	body, err := a.searchRun(r.Context(), a.store, c, "DocumentReference", q, false)
	if err != nil {
		return err
	}
	a.record(r.Context(), c, "fhir.operation", "success", auditDetail("operation", "docref", "patient", patient))
	recorded = true
	return writeJSON(w, r, http.StatusOK, body)
}

// parametersToValues reads a Parameters resource of simple values (the
// POST form of an operation) into url.Values.
func parametersToValues(body []byte) (url.Values, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name           string `json:"name"`
			ValueID        string `json:"valueId"`
			ValueString    string `json:"valueString"`
			ValueDateTime  string `json:"valueDateTime"`
			ValueDate      string `json:"valueDate"`
			ValueBoolean   *bool  `json:"valueBoolean"`
			ValueCanonical string `json:"valueCanonical"`
			ValueCoding    *struct {
				System string `json:"system"`
				Code   string `json:"code"`
			} `json:"valueCoding"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, problem.New(problem.InvalidRequest, "POST $docref takes a Parameters resource (or a form); the body is not one")
	}
	out := url.Values{}
	for _, x := range p.Parameter {
		switch {
		case x.ValueCoding != nil:
			out.Add(x.Name, x.ValueCoding.System+"|"+x.ValueCoding.Code)
		case x.ValueBoolean != nil:
			if *x.ValueBoolean {
				out.Add(x.Name, "true")
			} else {
				out.Add(x.Name, "false")
			}
		default:
			for _, v := range []string{x.ValueID, x.ValueString, x.ValueDateTime, x.ValueDate, x.ValueCanonical} {
				if v != "" {
					out.Add(x.Name, v)
					break
				}
			}
		}
	}
	return out, nil
}
