package fhir

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIsRead(t *testing.T) {
	for _, c := range []struct {
		method, target string
		want           bool
	}{
		{http.MethodGet, "/fhir/metadata", true},
		{http.MethodGet, "/fhir/Patient/p1", true},
		{http.MethodGet, "/fhir/Observation?patient=p1&code=x", true},
		{http.MethodGet, "/fhir/Patient/p1/_history", true},
		{http.MethodGet, "/fhir/$export", true},
		{http.MethodGet, "/fhir/$export-status/job1", true},
		{http.MethodGet, "/fhir/$export-file/job1/Patient-1.ndjson", false},
		{http.MethodGet, "/fhir/$export-file/job1", true}, // not a file: answered as an error, quickly
		{http.MethodPost, "/fhir/Observation/_search", true},
		{http.MethodPost, "/fhir/Observation", false},
		{http.MethodPost, "/fhir", false}, // a batch or transaction
		{http.MethodPost, "/fhir/Patient/p1/Observation/_search", true},
		{http.MethodPut, "/fhir/Patient/p1", false},
		{http.MethodDelete, "/fhir/$export-status/job1", false},
	} {
		if got := IsRead(httptest.NewRequest(c.method, c.target, nil)); got != c.want {
			t.Errorf("IsRead(%s %s) = %v; want %v", c.method, c.target, got, c.want)
		}
	}
}
