package fhir_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/devdata"
	"smartgate/internal/pgtest"
)

// backends runs fn on SQLite and, when the throwaway cluster is available,
// on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite") })
	t.Run("postgres", func(t *testing.T) {
		pgtest.Shared(t) // skips (or fails under SMARTGATE_REQUIRE_POSTGRES=1) without PostgreSQL
		fn(t, "postgres")
	})
}

func TestCRUDAndVersions(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		tok := f.token("system/*.cruds", "", "")
		pat := devdata.Patients()[0]
		obs := fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":101,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`, pat)
		r := f.do("POST", "/Observation", tok, obs)
		if r.status != http.StatusCreated {
			t.Fatalf("create = %d %s", r.status, r.body)
		}
		loc := r.header.Get("Location")
		id := r.json["id"].(string)
		if !strings.HasSuffix(loc, "/Observation/"+id+"/_history/1") || r.header.Get("ETag") != `W/"1"` {
			t.Fatalf("Location %q ETag %q", loc, r.header.Get("ETag"))
		}
		// update with a stale If-Match is refused; with the current one it works
		upd := strings.Replace(obs, `"status":"final"`, `"id":"`+id+`","status":"amended"`, 1)
		if r := f.do("PUT", "/Observation/"+id, tok, upd, "If-Match", `W/"7"`); r.status != http.StatusPreconditionFailed {
			t.Fatalf("stale If-Match = %d %s", r.status, r.body)
		}
		r = f.do("PUT", "/Observation/"+id, tok, upd, "If-Match", `W/"1"`, "Prefer", "return=minimal")
		if r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("ETag") != `W/"2"` {
			t.Fatalf("update = %d %q etag %s", r.status, r.body, r.header.Get("ETag"))
		}
		if r := f.do("GET", "/Observation/"+id+"/_history/1", tok, nil); r.status != 200 || r.json["status"] != "final" {
			t.Fatalf("vread 1 = %d %s", r.status, r.body)
		}
		if r := f.do("GET", "/Observation/"+id+"/_history", tok, nil); r.status != 200 || len(r.ids("")) != 2 {
			t.Fatalf("history = %d %v", r.status, r.ids(""))
		}
		if r := f.do("DELETE", "/Observation/"+id, tok, nil); r.status != http.StatusNoContent {
			t.Fatalf("delete = %d %s", r.status, r.body)
		}
		if r := f.do("GET", "/Observation/"+id, tok, nil); r.status != http.StatusGone {
			t.Fatalf("read after delete = %d %s", r.status, r.body)
		}
		// invalid resources are refused with a FHIRPath location, and nothing is written
		r = f.do("POST", "/Observation", tok, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"high"},"bogus":1}`)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"expression":["Observation.bogus"]`) {
			t.Fatalf("invalid create = %d %s", r.status, r.body)
		}
		// conditional create finds the existing resource
		r = f.do("POST", "/Patient", tok, `{"resourceType":"Patient","name":[{"family":"X"}]}`, "If-None-Exist", "_id="+pat)
		if r.status != http.StatusOK || r.json["id"] != pat {
			t.Fatalf("conditional create = %d %s", r.status, r.body)
		}
	})
}

func TestPatientScopeIsolation(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		pats := devdata.Patients()
		me, other := pats[0], pats[1]
		tok := f.token("patient/*.rs", me, "")
		if r := f.do("GET", "/Patient/"+me, tok, nil); r.status != 200 {
			t.Fatalf("own Patient = %d %s", r.status, r.body)
		}
		if r := f.do("GET", "/Patient/"+other, tok, nil); r.status != http.StatusNotFound {
			t.Fatalf("other Patient = %d %s", r.status, r.body)
		}
		all := f.do("GET", "/Observation?_count=1000", f.token("system/*.rs", "", ""), nil)
		mine := f.do("GET", "/Observation?_count=1000", tok, nil)
		if mine.status != 200 || len(mine.ids("match")) == 0 || len(mine.ids("match")) >= len(all.ids("match")) {
			t.Fatalf("patient search: %d of %d observations (%d)", len(mine.ids("match")), len(all.ids("match")), mine.status)
		}
		if total := mine.json["total"].(float64); int(total) != len(mine.ids("match")) {
			t.Fatalf("total %v but %d entries", total, len(mine.ids("match")))
		}
		// search by the other patient returns nothing, not an error
		r := f.do("GET", "/Observation?patient="+other, tok, nil)
		if r.status != 200 || len(r.ids("match")) != 0 || r.json["total"].(float64) != 0 {
			t.Fatalf("search for another patient = %d %v", r.status, r.ids("match"))
		}
		// a write is outside patient/*.rs
		r = f.do("POST", "/Observation", tok, `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`)
		if r.status != http.StatusForbidden || !strings.Contains(r.header.Get("WWW-Authenticate"), `scope="patient/Observation.c"`) {
			t.Fatalf("write under read scope = %d %s %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
	})
}

func TestGranularScope(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		me := devdata.Patients()[0]
		lab := f.token("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", me, "")
		wide := f.token("patient/Observation.rs", me, "")
		all := f.do("GET", "/Observation?_count=1000", wide, nil)
		labs := f.do("GET", "/Observation?_count=1000", lab, nil)
		if labs.status != 200 || len(labs.ids("match")) == 0 || len(labs.ids("match")) >= len(all.ids("match")) {
			t.Fatalf("laboratory-constrained search: %d of %d (%d %s)", len(labs.ids("match")), len(all.ids("match")), labs.status, labs.body)
		}
		vitals := f.do("GET", "/Observation?category=vital-signs&_count=1", wide, nil)
		ids := vitals.ids("match")
		if len(ids) == 0 {
			t.Fatal("no vital-signs Observation in the demo data")
		}
		r := f.do("GET", "/"+ids[0], lab, nil)
		if r.status != http.StatusForbidden {
			t.Fatalf("read of a vital-signs Observation under a laboratory scope = %d %s", r.status, r.body)
		}
		if slices.Contains(labs.ids("match"), ids[0]) {
			t.Fatal("laboratory search returned a vital-signs Observation")
		}
	})
}

func TestTokenErrors(t *testing.T) {
	f := newFixture(t, "sqlite")
	r := f.do("GET", "/Patient", "", nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="`+issuer+`/fhir"` {
		t.Fatalf("no token = %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	r = f.do("GET", "/Patient", "not-a-jwt", nil)
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) || !strings.Contains(r.header.Get("WWW-Authenticate"), "malformed") {
		t.Fatalf("bad token = %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := f.do("GET", "/metadata", "", nil); r.status != 200 || r.json["resourceType"] != "CapabilityStatement" {
		t.Fatalf("metadata = %d", r.status)
	}
	if r := f.do("GET", "/Foo/1", f.token("system/*.rs", "", ""), nil); r.status != 404 {
		t.Fatalf("unknown type = %d", r.status)
	}
}

// TestPractitionerCareRelationship: with fhir.practitioner_access set to
// care-relationship, a practitioner's user/ scopes reach exactly the
// patients linked to them by Patient.generalPractitioner, an Encounter's
// participant or a CareTeam's participant; patient-free types stay readable.
func TestPractitionerCareRelationship(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend, func(d *fhir.Deps) { d.PractitionerAccess = "care-relationship" })
		sys := f.token("system/*.rs", "", "")
		partial := 0 // practitioners linked to some but not all patients
		for _, dr := range devdata.Practitioners() {
			want := map[string]bool{}
			for _, id := range f.do("GET", "/Patient?general-practitioner=Practitioner/"+dr+"&_count=1000", sys, nil).ids("match") {
				want[id] = true
			}
			for _, q := range []string{"/Encounter?participant=Practitioner/" + dr, "/CareTeam?participant=Practitioner/" + dr} {
				r := f.do("GET", q+"&_count=1000", sys, nil)
				for _, e := range r.json["entry"].([]any) {
					res := e.(map[string]any)["resource"].(map[string]any)
					subj, _ := res["subject"].(map[string]any)
					if ref, ok := subj["reference"].(string); ok {
						want[ref] = true
					}
				}
			}
			if len(want) > 0 && len(want) < len(devdata.Patients()) {
				partial++
			}
			tok := f.token("user/*.rs", "", "Practitioner/"+dr)
			got := f.do("GET", "/Patient?_count=1000", tok, nil).ids("match")
			if len(got) != len(want) {
				t.Errorf("Practitioner/%s sees %v, want %v", dr, got, want)
			}
			for _, id := range got {
				if !want[id] {
					t.Errorf("Practitioner/%s sees unlinked %s", dr, id)
				}
			}
			for _, p := range devdata.Patients() {
				r := f.do("GET", "/Patient/"+p, tok, nil)
				if want["Patient/"+p] != (r.status == 200) || !want["Patient/"+p] && r.status != 404 {
					t.Errorf("Practitioner/%s reads Patient/%s: %d (linked %v)", dr, p, r.status, want["Patient/"+p])
				}
			}
			if r := f.do("GET", "/Practitioner/"+dr, tok, nil); r.status != 200 {
				t.Errorf("own Practitioner resource: %d", r.status)
			}
		}
		if partial == 0 {
			t.Fatal("no demo practitioner is linked to some but not all patients; the test proves nothing")
		}
		// The default (all) reaches every patient.
		all := newFixture(t, backend)
		tok := all.token("user/*.rs", "", "Practitioner/"+devdata.Practitioners()[0])
		if got := all.do("GET", "/Patient?_count=1000", tok, nil).ids("match"); len(got) != len(devdata.Patients()) {
			t.Errorf("practitioner_access all: sees %d of %d patients", len(got), len(devdata.Patients()))
		}
	})
}

// TestProvenanceOfOwnRecords: under a patient/ scope, the Provenance of the
// patient's own records is reachable (search and _revinclude), and the
// Provenance of another patient's records is not.
func TestProvenanceOfOwnRecords(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		f := newFixture(t, backend)
		sys := f.token("system/*.rs", "", "")
		all := f.do("GET", "/Provenance?_count=100", sys, nil).ids("match")
		if len(all) < 2 {
			t.Fatalf("the demo data has %d Provenance resources", len(all))
		}
		seen := 0
		for _, p := range devdata.Patients() {
			tok := f.token("patient/*.rs", p, "")
			own := f.do("GET", "/Provenance?_count=100", tok, nil).ids("match")
			seen += len(own)
			for _, prov := range own {
				// Each one targets something this patient may read.
				r := f.do("GET", "/"+prov, sys, nil)
				targets, _ := r.json["target"].([]any)
				readable := false
				for _, tg := range targets {
					ref := tg.(map[string]any)["reference"].(string)
					if f.do("GET", "/"+ref, tok, nil).status == 200 {
						readable = true
					}
				}
				if !readable {
					t.Errorf("%s sees %s, whose targets it cannot read", p, prov)
				}
			}
			// _revinclude brings the same Provenance along with the targets.
			rev := f.do("GET", "/Patient?_id="+p+"&_revinclude=Provenance:target", tok, nil)
			for _, id := range rev.ids("include") {
				if !slices.Contains(own, id) {
					t.Errorf("%s: _revinclude brought %s, which a Provenance search does not show", p, id)
				}
			}
		}
		if seen != len(all) {
			t.Errorf("patients together see %d Provenance resources of %d", seen, len(all))
		}
	})
}

// TestAccessRegressions covers holes found in review: each must stay closed.
func TestAccessRegressions(t *testing.T) {
	f := newFixture(t, "sqlite")
	pats := devdata.Patients()
	amy, jose := pats[0], pats[1]
	sys := f.token("system/*.cruds", "", "")
	labCat := "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

	// 1. An unknown parameter must not satisfy a granular scope's constraint.
	tok := f.token("system/Observation.rs?foo=bar", "", "")
	if r := f.do("GET", "/Observation?foo=bar&_summary=count", tok, nil); r.status != 200 || r.json["total"].(float64) != 0 {
		t.Errorf("constraint foo=bar satisfied by an ignored parameter: %d total %v", r.status, r.json["total"])
	}

	// 2. vread and history check each version: an Observation that moved
	// from José to Amy shows Amy only the version that is hers, and a
	// lab-only token sees only the laboratory version.
	body := func(patient, cat string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":"moved","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":%q}]}],"code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, cat, patient)
	}
	if r := f.do("PUT", "/Observation/moved", sys, body(jose, "vital-signs")); r.status != 201 {
		t.Fatalf("PUT v1 = %d %s", r.status, r.body)
	}
	if r := f.do("PUT", "/Observation/moved", sys, body(amy, "laboratory")); r.status != 200 {
		t.Fatalf("PUT v2 = %d %s", r.status, r.body)
	}
	amyTok := f.token("patient/*.rs", amy, "")
	if r := f.do("GET", "/Observation/moved/_history/1", amyTok, nil); r.status != 404 {
		t.Errorf("Amy vreads José's version 1: %d", r.status)
	}
	if r := f.do("GET", "/Observation/moved/_history/2", amyTok, nil); r.status != 200 {
		t.Errorf("Amy vreads her version 2: %d", r.status)
	}
	if ids := f.do("GET", "/Observation/moved/_history", amyTok, nil).ids(""); len(ids) != 1 {
		t.Errorf("Amy's instance history shows %d versions, want 1", len(ids))
	}
	lab := f.token("patient/Observation.rs?category="+labCat, amy, "")
	if r := f.do("GET", "/Observation/moved/_history/1", lab, nil); r.status == 200 {
		t.Errorf("a lab-only token vreads a vital-signs version: %d", r.status)
	}

	// 3. Under care-relationship, a practitioner cannot link himself to a
	// patient by writing an Encounter that names him.
	cr := newFixture(t, "sqlite", func(d *fhir.Deps) { d.PractitionerAccess = "care-relationship" })
	crSys := cr.token("system/*.rs", "", "")
	var outsider, patient string
	for _, dr := range devdata.Practitioners() {
		for _, p := range pats {
			if len(cr.do("GET", "/Patient?_id="+p+"&general-practitioner=Practitioner/"+dr, crSys, nil).ids("match")) == 0 &&
				len(cr.do("GET", "/Encounter?patient="+p+"&participant=Practitioner/"+dr, crSys, nil).ids("match")) == 0 &&
				len(cr.do("GET", "/CareTeam?patient="+p+"&participant=Practitioner/"+dr, crSys, nil).ids("match")) == 0 {
				outsider, patient = dr, p
			}
		}
	}
	if outsider == "" {
		t.Fatal("every demo practitioner is linked to every patient")
	}
	drTok := cr.token("user/*.cruds", "", "Practitioner/"+outsider)
	enc := fmt.Sprintf(`{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"},"participant":[{"individual":{"reference":"Practitioner/%s"}}]}`, patient, outsider)
	if r := cr.do("POST", "/Encounter", drTok, enc); r.status == 201 {
		t.Errorf("an unlinked practitioner created an Encounter linking himself to Patient/%s", patient)
	}
	if r := cr.do("GET", "/Patient/"+patient, drTok, nil); r.status != 404 {
		t.Errorf("unlinked practitioner reads Patient/%s: %d", patient, r.status)
	}

	// 4. A patient user's user/ scopes read but do not write patient-free types.
	patUser := f.token("user/*.cruds", "", "Patient/"+jose)
	if r := f.do("GET", "/Location?_count=1", patUser, nil); r.status != 200 || len(r.ids("match")) != 1 {
		t.Errorf("patient user reads Location: %d", r.status)
	}
	loc := f.do("GET", "/Location?_count=1", sys, nil).ids("match")[0]
	if r := f.do("DELETE", "/"+loc, patUser, nil); r.status != 403 {
		t.Errorf("patient user deletes %s: %d", loc, r.status)
	}

	// 5. A chain may not search a type the token has no scope for.
	obsOnly := f.token("system/Observation.rs", "", "")
	if r := f.do("GET", "/Observation?patient.birthdate=lt1950", obsOnly, nil); r.status != 403 {
		t.Errorf("chained search into Patient with only Observation scopes: %d", r.status)
	}

	// 6. A transaction's conditional create that matches makes its urn:uuid
	// references point at the existing resource.
	tx := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:11111111-1111-1111-1111-111111111111","resource":{"resourceType":"Patient","name":[{"family":"Dup"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"_id=%s"}},
	 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:11111111-1111-1111-1111-111111111111"}},"request":{"method":"POST","url":"Observation"}}]}`, amy)
	r := f.do("POST", "", sys, tx)
	if r.status != 200 {
		t.Fatalf("transaction = %d %s", r.status, r.body)
	}
	entries := r.json["entry"].([]any)
	loc2 := entries[1].(map[string]any)["response"].(map[string]any)["location"].(string)
	obs := f.do("GET", strings.TrimPrefix(loc2[:strings.Index(loc2, "/_history")], issuer+"/fhir"), sys, nil)
	if ref := obs.json["subject"].(map[string]any)["reference"]; ref != "Patient/"+amy {
		t.Errorf("the Observation's subject is %v, want Patient/%s", ref, amy)
	}
}

// TestDocRef: the US Core $docref operation returns the patient's stored
// documents, filtered by type and date, within the caller's access.
func TestDocRef(t *testing.T) {
	f := newFixture(t, "sqlite")
	pats := devdata.Patients()
	amy, jose := pats[0], pats[1]
	sys := f.token("system/*.rs", "", "")
	want := f.do("GET", "/DocumentReference?patient="+amy, sys, nil).ids("match")
	if len(want) == 0 {
		t.Fatal("no demo DocumentReference for the first patient")
	}
	got := f.do("GET", "/DocumentReference/$docref?patient="+amy, sys, nil)
	if got.status != 200 || !slices.Equal(got.ids("match"), want) {
		t.Fatalf("$docref = %d %v, want %v", got.status, got.ids("match"), want)
	}
	post := f.do("POST", "/DocumentReference/$docref", sys, `{"resourceType":"Parameters","parameter":[{"name":"patient","valueId":"`+amy+`"}]}`)
	if !slices.Equal(post.ids("match"), want) {
		t.Fatalf("POST $docref = %d %v", post.status, post.ids("match"))
	}
	if r := f.do("GET", "/DocumentReference/$docref?patient="+amy+"&start=2999-01-01", sys, nil); len(r.ids("match")) != 0 {
		t.Errorf("$docref with a start in the future found %v", r.ids("match"))
	}
	if r := f.do("GET", "/DocumentReference/$docref?patient="+amy, f.token("patient/DocumentReference.rs", jose, ""), nil); r.status != 200 || len(r.ids("match")) != 0 {
		t.Errorf("another patient's $docref = %d %v", r.status, r.ids("match"))
	}
	if r := f.do("GET", "/DocumentReference/$docref", sys, nil); r.status != 400 {
		t.Errorf("$docref without patient = %d", r.status)
	}
	cs := f.do("GET", "/metadata", "", nil)
	if !strings.Contains(string(cs.body), `"definition":"http://hl7.org/fhir/us/core/OperationDefinition/docref"`) {
		t.Error("the CapabilityStatement does not list $docref")
	}
}
