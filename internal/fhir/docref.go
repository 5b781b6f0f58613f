package fhir

import (
	"context"
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
func (a *API) docref(w http.ResponseWriter, r *http.Request, c *caller) error {
	in, err := docrefParams(r)
	var body []byte
	if err == nil {
		body, err = a.docrefRun(r.Context(), c, in)
	}
	// Recorded (a refusal as a failure) as a search is.
	if err := a.recordOutcome(r.Context(), c, "fhir.operation", auditDetail("operation", "docref", "patient", in.Get("patient")), err); err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, body)
}

// docrefParams are $docref's parameters: the query of a GET, the form or
// the Parameters body of a POST (the query when that cannot be read).
func docrefParams(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return r.URL.Query(), nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			return r.URL.Query(), problem.New(problem.InvalidRequest, "the form body of $docref could not be read")
		}
		return r.Form, nil
	}
	body, err := readBody(r)
	if err != nil {
		return r.URL.Query(), err
	}
	in, err := parametersToValues(body)
	if err != nil {
		return r.URL.Query(), err
	}
	return in, nil
}

// docrefRun is $docref's searchset: the search of DocumentReference the
// parameters in stand for.
func (a *API) docrefRun(ctx context.Context, c *caller, in url.Values) ([]byte, error) {
	patient := in.Get("patient")
	if patient == "" {
		return nil, problem.New(problem.InvalidRequest, "$docref needs the patient parameter (the id of the Patient), e.g. DocumentReference/$docref?patient=123")
	}
	q := url.Values{"patient": {patient}}
	for _, p := range []struct{ name, prefix string }{{"start", "ge"}, {"end", "le"}} {
		v := in.Get(p.name)
		if v == "" {
			continue
		}
		if _, _, err := index.DateRange(v); err != nil {
			return nil, problem.New(problem.InvalidRequest, "$docref parameter %q must be a FHIR dateTime such as 2024-01-31 or 2024-01-31T12:00:00Z, got %q", p.name, clip(v))
		}
		q.Add("period", p.prefix+v)
	}
	for _, t := range in["type"] {
		q.Add("type", t)
	}
	if v := in.Get("on-demand"); v == "true" {
		q.Set("_id", "on-demand-documents-are-not-generated")
	}
	return a.searchRun(ctx, a.store, c, "DocumentReference", q, false)
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
