package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/devdata"
	"smartgate/internal/token"
)

// BenchmarkFHIR measures the FHIR API through the whole handler chain of a
// dev-mode server on SQLite with the demo data (432 resources), in process:
// token verification (cached), scope enforcement, the SQL query and the
// JSON answer. serial is one request's cost; clients=16 the machine's
// throughput. Run: go test ./bench -run '^$' -bench FHIR -benchmem
func BenchmarkFHIR(b *testing.B) {
	h, a := newServer(b, map[string]string{"rate_limits.enabled": "false"})
	revs := token.NewRevocations(a.Store, nil)
	tokens := token.New(a.Keys, revs, token.Options{Issuer: "http://127.0.0.1:8080", Audience: "http://127.0.0.1:8080/fhir"})
	mint := func(scope, patient string) string {
		tok, err := tokens.Issue(token.Claims{Subject: "bench", ClientID: "bench", Scope: scope, Patient: patient, Expiry: time.Now().Add(time.Hour).Unix(), Grant: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	amy := devdata.Patients()[0]
	patientTok := mint("patient/*.rs", amy)
	systemTok := mint("system/*.cruds", "")
	labTok := mint("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", amy)
	obs := `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"Patient/` + amy + `"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":101,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`
	cases := []struct {
		name, method, path, tok, body string
		want                          int
	}{
		{"read/patient-scope", "GET", "/fhir/Patient/" + amy, patientTok, "", 200},
		{"search/patient+category/patient-scope", "GET", "/fhir/Observation?patient=" + amy + "&category=laboratory", patientTok, "", 200},
		{"search/all-observations/granular-lab-scope", "GET", "/fhir/Observation?_count=50", labTok, "", 200},
		{"search/code+date/system-scope", "GET", "/fhir/Observation?code=http://loinc.org|8867-4&date=ge2024-01-01&_count=50", systemTok, "", 200},
		{"search/revinclude-provenance/patient-scope", "GET", "/fhir/Condition?patient=" + amy + "&_revinclude=Provenance:target", patientTok, "", 200},
		{"create/observation/system-scope", "POST", "/fhir/Observation", systemTok, obs, 201},
	}
	for _, c := range cases {
		do := func(b *testing.B) bool {
			var r *http.Request
			if c.body != "" {
				r = httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
				r.Header.Set("Content-Type", "application/fhir+json")
			} else {
				r = httptest.NewRequest(c.method, c.path, nil)
			}
			r.Header.Set("Authorization", "Bearer "+c.tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != c.want {
				b.Errorf("%s %s: status %d: %.300s", c.method, c.path, rec.Code, rec.Body.String())
				return false
			}
			return true
		}
		b.Run(c.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if !do(b) {
					return
				}
			}
		})
		b.Run(c.name+"/clients=16", func(b *testing.B) {
			setClients(b, 16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !do(b) {
						return
					}
				}
			})
		})
	}
}

// BenchmarkFHIRScale loads the demo data set many times over (ids and
// references suffixed per copy: 100 copies are 43,200 resources and 600
// patients) and measures a patient-scoped search and read, which must stay
// indexed: their cost should not grow with the size of the database.
// Run: go test ./bench -run '^$' -bench FHIRScale -benchtime 2s
func BenchmarkFHIRScale(b *testing.B) {
	for _, copies := range []int{1, 100} {
		b.Run(fmt.Sprintf("copies=%d", copies), func(b *testing.B) {
			h, a := newServer(b, map[string]string{"rate_limits.enabled": "false"})
			api := fhir.New(fhir.Deps{Store: a.Store, Base: "http://127.0.0.1:8080/fhir"})
			set := devdata.Set()
			for i := 1; i < copies; i++ {
				suffix := fmt.Sprintf("-c%d", i)
				rs := make([]fhir.SeedResource, len(set))
				for j, r := range set {
					body := string(r.Body)
					for _, x := range set {
						body = strings.ReplaceAll(body, `"`+x.Type+"/"+x.ID+`"`, `"`+x.Type+"/"+x.ID+suffix+`"`)
					}
					body = strings.Replace(body, `"id":"`+r.ID+`"`, `"id":"`+r.ID+suffix+`"`, 1)
					rs[j] = fhir.SeedResource{Type: r.Type, ID: r.ID + suffix, Body: []byte(body)}
				}
				if err := api.Seed(context.Background(), rs, false); err != nil {
					b.Fatal(err)
				}
			}
			revs := token.NewRevocations(a.Store, nil)
			tokens := token.New(a.Keys, revs, token.Options{Issuer: "http://127.0.0.1:8080", Audience: "http://127.0.0.1:8080/fhir"})
			amy := devdata.Patients()[0]
			tok, _ := tokens.Issue(token.Claims{Subject: "bench", ClientID: "bench", Scope: "patient/*.rs", Patient: amy, Expiry: time.Now().Add(time.Hour).Unix(), Grant: "bench"})
			for _, path := range []string{"/fhir/Observation?patient=" + amy + "&category=laboratory", "/fhir/Observation?_count=50", "/fhir/Condition/" + firstOf(set, "Condition", amy)} {
				b.Run(strings.SplitN(strings.TrimPrefix(path, "/fhir/"), "?", 2)[0]+"?"+strings.SplitN(path+"?", "?", 3)[1], func(b *testing.B) {
					for b.Loop() {
						r := httptest.NewRequest("GET", path, nil)
						r.Header.Set("Authorization", "Bearer "+tok)
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, r)
						if rec.Code != 200 {
							b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
						}
					}
				})
			}
		})
	}
}

// firstOf returns the id of the first resource of typ that mentions patient.
func firstOf(set []devdata.Resource, typ, patient string) string {
	for _, r := range set {
		if r.Type == typ && strings.Contains(string(r.Body), "Patient/"+patient) {
			return r.ID
		}
	}
	return ""
}
