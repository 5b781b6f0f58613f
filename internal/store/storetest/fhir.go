package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"smartgate/internal/store"
)

func fhirTests() []struct {
	name string
	fn   func(t *testing.T, b Backend)
} {
	return []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"FHIRVersions", testFHIRVersions},
		{"FHIRTransactionRollback", testFHIRRollback},
		{"FHIRSearchConditions", testFHIRSearch},
		{"FHIRSearchPatientCodes", testFHIRPatientCodes},
		{"FHIRPagingAndSort", testFHIRPaging},
		{"FHIRCompartmentAndAccess", testFHIRAccess},
		{"FHIRIncludesAndHistory", testFHIRIncludes},
		{"FHIRPutNew", testFHIRPutNew},
	}
}

func put(t *testing.T, s store.Store, w store.Write) store.Resource {
	t.Helper()
	var r store.Resource
	err := s.WriteFHIR(ctx(t), func(tx store.FHIRTx) error {
		var err error
		r, err = tx.Put(ctx(t), w)
		return err
	})
	if err != nil {
		t.Fatalf("Put %s/%s: %v", w.Type, w.ID, err)
	}
	return r
}

func obs(id, patient, code string, day int) store.Write {
	low := time.Date(2024, 1, day, 0, 0, 0, 0, time.UTC).UnixMicro()
	return store.Write{
		Type: "Observation", ID: id,
		Body: []byte(fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","meta":{"source":"x"},"subject":{"reference":"Patient/%s"}}`, id, patient)),
		Index: store.Index{
			Tokens:     []store.TokenIndex{{Param: "code", System: "http://loinc.org", Code: code, Text: "code " + code}, {Param: "status", Code: "final"}},
			Refs:       []store.RefIndex{{Param: "subject", Type: "Patient", ID: patient}, {Param: "patient", Type: "Patient", ID: patient}},
			Dates:      []store.DateIndex{{Param: "date", Low: low, High: low + 86400e6}},
			Quantities: []store.QuantityIndex{{Param: "value-quantity", Value: float64(day) + 0.5, System: "http://unitsofmeasure.org", Code: "kg", Unit: "kg"}},
			Patients:   []string{patient},
		},
	}
}

func patient(id, family string) store.Write {
	return store.Write{
		Type: "Patient", ID: id,
		Body: []byte(fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q}]}`, family)),
		Index: store.Index{
			Strings:  []store.StringIndex{{Param: "family", Norm: family, Exact: family}, {Param: "name", Norm: family, Exact: family}},
			URIs:     []store.URIIndex{{Param: "_profile", Value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}},
			Numbers:  []store.NumberIndex{{Param: "n", Value: float64(len(family))}},
			Patients: []string{id},
		},
	}
}

func testFHIRVersions(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	r1 := put(t, s, patient("p1", "shaw"))
	if r1.Version != 1 || r1.Method != "create" {
		t.Fatalf("first put = version %d %s, want 1 create", r1.Version, r1.Method)
	}
	var body map[string]any
	if err := json.Unmarshal(r1.Body, &body); err != nil {
		t.Fatal(err)
	}
	meta, _ := body["meta"].(map[string]any)
	if body["id"] != "p1" || meta["versionId"] != "1" || meta["lastUpdated"] == nil {
		t.Fatalf("stored body lacks id/meta: %s", r1.Body)
	}
	r2 := put(t, s, patient("p1", "shaw-jones"))
	if r2.Version != 2 || r2.Method != "update" || !r2.LastUpdated.After(r1.LastUpdated) {
		t.Fatalf("second put = %+v", r2)
	}
	// If-Match on a stale version, and an update that must not create.
	err := s.WriteFHIR(c, func(tx store.FHIRTx) error {
		w := patient("p1", "x")
		w.IfMatch = 1
		_, err := tx.Put(c, w)
		return err
	})
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("stale IfMatch: %v, want ErrVersionConflict", err)
	}
	err = s.WriteFHIR(c, func(tx store.FHIRTx) error {
		w := patient("nope", "x")
		w.MustExist = true
		_, err := tx.Put(c, w)
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MustExist on a new id: %v, want ErrNotFound", err)
	}
	got, err := s.ReadResource(c, "Patient", "p1", nil)
	if err != nil || got.Version != 2 {
		t.Fatalf("read = %+v, %v", got, err)
	}
	old, err := s.ReadVersion(c, "Patient", "p1", 1)
	if err != nil || string(old.Body) != string(r1.Body) {
		t.Fatalf("vread 1 = %s, %v; want %s", old.Body, err, r1.Body)
	}
	if _, err := s.ReadVersion(c, "Patient", "p1", 9); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("vread 9: %v", err)
	}
	d := put(t, s, store.Write{Type: "Patient", ID: "p1", Delete: true})
	if d.Version != 3 || !d.Deleted {
		t.Fatalf("delete = %+v", d)
	}
	if _, err := s.ReadResource(c, "Patient", "p1", nil); !errors.Is(err, store.ErrGone) {
		t.Fatalf("read after delete: %v, want ErrGone", err)
	}
	if _, err := s.ReadResource(c, "Patient", "never", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read of a never-written id: %v", err)
	}
	// A second delete is a no-op; a search no longer finds it.
	if d2 := put(t, s, store.Write{Type: "Patient", ID: "p1", Delete: true}); d2.Version != 0 {
		t.Fatalf("second delete stored version %d", d2.Version)
	}
	res, err := s.Search(c, store.Query{Type: "Patient", Page: store.Page{Count: 10, Total: true}})
	if err != nil || res.Total != 0 || len(res.Resources) != 0 {
		t.Fatalf("search after delete = %+v, %v", res, err)
	}
	// Re-creating after a delete continues the version sequence.
	r4 := put(t, s, patient("p1", "back"))
	if r4.Version != 4 {
		t.Fatalf("re-create = version %d, want 4", r4.Version)
	}
	// Every version keeps its own body: the current one's, the one a
	// delete ended and the one an update ended (the store may keep the
	// current version's body once, in the resource's row).
	for _, want := range []store.Resource{r1, r2, r4} {
		got, err := s.ReadVersion(c, "Patient", "p1", want.Version)
		if err != nil || string(got.Body) != string(want.Body) {
			t.Fatalf("vread %d = %s, %v; want %s", want.Version, got.Body, err, want.Body)
		}
	}
	if got, err := s.ReadVersion(c, "Patient", "p1", 3); err != nil || !got.Deleted || got.Body != nil {
		t.Fatalf("vread 3 (the delete) = %+v, %v", got, err)
	}
	h, more, err := s.History(c, store.HistoryQuery{Type: "Patient", ID: "p1", Count: 10})
	if err != nil || more || len(h) != 4 {
		t.Fatalf("history = %d entries, more %v, %v", len(h), more, err)
	}
	var versions []int64
	for _, e := range h {
		versions = append(versions, e.Version)
	}
	if !slices.Equal(versions, []int64{4, 3, 2, 1}) || !h[1].Deleted || h[1].Method != "delete" {
		t.Fatalf("history versions = %v (deleted %v)", versions, h[1].Deleted)
	}
	for i, want := range [][]byte{r4.Body, nil, r2.Body, r1.Body} {
		if string(h[i].Body) != string(want) {
			t.Fatalf("history entry of version %d: body %s, want %s", h[i].Version, h[i].Body, want)
		}
	}
	// And once more after an update of the current version: version 4
	// becomes history.
	r5 := put(t, s, patient("p1", "again"))
	if got, err := s.ReadVersion(c, "Patient", "p1", 4); err != nil || string(got.Body) != string(r4.Body) {
		t.Fatalf("vread 4 after version 5 = %s, %v; want %s", got.Body, err, r4.Body)
	}
	if got, err := s.ReadVersion(c, "Patient", "p1", 5); err != nil || string(got.Body) != string(r5.Body) {
		t.Fatalf("vread 5 = %s, %v; want %s", got.Body, err, r5.Body)
	}
}

func testFHIRRollback(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	put(t, s, patient("p1", "shaw"))
	boom := errors.New("boom")
	err := s.WriteFHIR(c, func(tx store.FHIRTx) error {
		if _, err := tx.Put(c, patient("p1", "changed")); err != nil {
			return err
		}
		if _, err := tx.Put(c, obs("o1", "p1", "1234-5", 1)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFHIR = %v, want boom", err)
	}
	got, err := s.ReadResource(c, "Patient", "p1", nil)
	if err != nil || got.Version != 1 {
		t.Fatalf("after rollback Patient = v%d, %v", got.Version, err)
	}
	if _, err := s.ReadResource(c, "Observation", "o1", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after rollback Observation: %v", err)
	}
	res, err := s.Search(c, store.Query{Type: "Patient", Where: store.StringMatch{Param: "family", Value: "changed"}, Page: store.Page{Count: 5}})
	if err != nil || len(res.Resources) != 0 {
		t.Fatalf("rolled-back index rows are searchable: %+v, %v", res, err)
	}
}

func ids(res store.SearchResult) []string {
	var out []string
	for _, f := range res.Resources {
		out = append(out, f.ID)
	}
	return out
}

// testFHIRPatientCodes searches a code within patients' compartments,
// which the SQL store answers from the patient's token rows (schema 15):
// resources in one patient's compartment, in two, in none, and one that
// moves from a patient to another.
func testFHIRPatientCodes(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	put(t, s, obs("o1", "p1", "a", 1))
	put(t, s, obs("o2", "p2", "a", 2))
	put(t, s, obs("o3", "p1", "b", 3))
	shared := obs("o4", "p2", "a", 4)
	shared.Index.Patients = []string{"p3", "p2", "p3"}
	put(t, s, shared)
	none := obs("o5", "p1", "a", 5)
	none.Index.Patients = nil
	put(t, s, none)
	put(t, s, obs("o6", "p1", "a", 6))
	day := func(d int) int64 { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC).UnixMicro() }
	code := store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "a"}
	in := func(p ...string) store.InCompartment { return store.InCompartment{Patients: p} }
	check := func(when string, cases []struct {
		name string
		cond store.Cond
		want []string
	}) {
		t.Helper()
		for _, tc := range cases {
			res, err := s.Search(c, store.Query{Type: "Observation", Where: tc.cond, Page: store.Page{Count: 50, Total: true}})
			if err != nil {
				t.Errorf("%s, %s: %v", when, tc.name, err)
				continue
			}
			got := ids(res)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || res.Total != len(tc.want) {
				t.Errorf("%s, %s: got %v (total %d), want %v", when, tc.name, got, res.Total, tc.want)
			}
		}
	}
	check("written", []struct {
		name string
		cond store.Cond
		want []string
	}{
		{"one patient", store.And{code, in("p1")}, []string{"o1", "o6"}},
		{"under a scope's Or", store.And{code, store.Or{in("p2")}}, []string{"o2", "o4"}},
		{"shared by two patients, the second", store.And{code, in("p3")}, []string{"o4"}},
		{"a patient with none, who reads the shared rows", store.And{code, in("p9")}, nil},
		{"two patients", store.And{code, in("p1", "p3")}, []string{"o1", "o4", "o6"}},
		{"any system", store.And{store.TokenMatch{Param: "code", AnySystem: true, Code: "a"}, in("p1")}, []string{"o1", "o6"}},
		{"another code", store.And{store.TokenMatch{Param: "code", AnySystem: true, Code: "b"}, in("p1")}, []string{"o3"}},
		{"with reference and date", store.And{store.RefMatch{Param: "patient", ID: "p1"}, code, store.DateMatch{Param: "date", Prefix: store.GE, Low: day(2), High: day(3)}, in("p1")}, []string{"o6"}},
		{"status, then code", store.And{store.TokenMatch{Param: "status", AnySystem: true, Code: "final"}, code, in("p2")}, []string{"o2", "o4"}},
		{"status alone", store.And{store.TokenMatch{Param: "status", AnySystem: true, Code: "final"}, in("p1")}, []string{"o1", "o3", "o6"}},
		// code=a,b: one range for each code and key.
		{"a list of codes", store.And{store.Or{code, store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "b"}}, in("p1")}, []string{"o1", "o3", "o6"}},
		{"a list of codes, any system", store.And{store.Or{store.TokenMatch{Param: "code", AnySystem: true, Code: "b"}, store.TokenMatch{Param: "code", AnySystem: true, Code: "a"}}, in("p2")}, []string{"o2", "o4"}},
		{"a list of codes of two systems", store.And{store.Or{code, store.TokenMatch{Param: "code", System: "http://snomed.info/sct", Code: "b"}}, in("p1")}, []string{"o1", "o6"}},
		{"a list of codes, and a code", store.And{store.Or{store.TokenMatch{Param: "code", AnySystem: true, Code: "b"}, code}, store.TokenMatch{Param: "status", AnySystem: true, Code: "final"}, in("p1")}, []string{"o1", "o3", "o6"}},
		{"an id drives", store.And{store.IDIn{IDs: []string{"o1", "o2"}}, code, in("p1")}, []string{"o1"}},
		{"no compartment", code, []string{"o1", "o2", "o4", "o5", "o6"}},
		// A reference that puts the resource in the patient's compartment
		// (Observation?patient=P under a system-level token).
		// o5 refers to p1 by patient though its index puts it in no
		// compartment (the indexer would not): what the reference asks
		// holds for it.
		{"a compartment's reference", store.And{store.RefMatch{Param: "patient", Type: "Patient", ID: "p1", Compartment: true}, code}, []string{"o1", "o5", "o6"}},
		{"a compartment's reference, untyped", store.And{store.RefMatch{Param: "patient", ID: "p2", Compartment: true}, code}, []string{"o2", "o4"}},
		// o4 is in p3's compartment, but does not refer to p3 by patient.
		{"a compartment's reference the shared resource lacks", store.And{store.RefMatch{Param: "patient", ID: "p3", Compartment: true}, code}, nil},
	})
	// A resource that moves to another patient's compartment takes its
	// token rows along; one that leaves every compartment leaves them.
	put(t, s, obs("o6", "p2", "a", 6))
	gone := obs("o1", "p1", "a", 1)
	gone.Index.Patients = nil
	put(t, s, gone)
	check("updated", []struct {
		name string
		cond store.Cond
		want []string
	}{
		{"the old patient", store.And{code, in("p1")}, nil},
		{"the new patient", store.And{code, in("p2")}, []string{"o2", "o4", "o6"}},
	})
}

func testFHIRSearch(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	put(t, s, patient("p1", "shaw"))
	put(t, s, patient("p2", "shawn"))
	put(t, s, patient("p3", "álvarez"))
	for i, code := range []string{"a", "b", "a", "c"} {
		pat := "p1"
		if i%2 == 1 {
			pat = "p2"
		}
		put(t, s, obs(fmt.Sprintf("o%d", i+1), pat, code, i+1))
	}
	day := func(d int) int64 { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC).UnixMicro() }
	cases := []struct {
		name string
		typ  string
		cond store.Cond
		want []string
	}{
		{"token code+system", "Observation", store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "a"}, []string{"o1", "o3"}},
		{"token any system", "Observation", store.TokenMatch{Param: "code", AnySystem: true, Code: "b"}, []string{"o2"}},
		{"token no system", "Observation", store.TokenMatch{Param: "code", Code: "b"}, nil},
		{"token system only", "Observation", store.TokenMatch{Param: "code", System: "http://loinc.org", AnyCode: true}, []string{"o1", "o2", "o3", "o4"}},
		{"token text", "Observation", store.TokenMatch{Param: "code", Text: "code c"}, []string{"o4"}},
		{"token text word start", "Observation", store.TokenMatch{Param: "code", Text: "b"}, []string{"o2"}},
		{"token :not", "Observation", store.Not{Cond: store.TokenMatch{Param: "code", AnySystem: true, Code: "a"}}, []string{"o2", "o4"}},
		{"string prefix", "Patient", store.StringMatch{Param: "family", Value: "shaw"}, []string{"p1", "p2"}},
		{"string exact", "Patient", store.StringMatch{Param: "family", Value: "shaw", Mode: store.StringExact}, []string{"p1"}},
		{"string contains", "Patient", store.StringMatch{Param: "family", Value: "var", Mode: store.StringContains}, []string{"p3"}},
		{"string like metacharacters are literal", "Patient", store.StringMatch{Param: "family", Value: "%", Mode: store.StringContains}, nil},
		{"reference", "Observation", store.RefMatch{Param: "subject", Type: "Patient", ID: "p2"}, []string{"o2", "o4"}},
		{"reference any type", "Observation", store.RefMatch{Param: "subject", ID: "p1"}, []string{"o1", "o3"}},
		{"or", "Observation", store.Or{store.TokenMatch{Param: "code", AnySystem: true, Code: "b"}, store.TokenMatch{Param: "code", AnySystem: true, Code: "c"}}, []string{"o2", "o4"}},
		{"and", "Observation", store.And{store.RefMatch{Param: "subject", ID: "p1"}, store.TokenMatch{Param: "code", AnySystem: true, Code: "a"}}, []string{"o1", "o3"}},
		{"id", "Observation", store.IDIn{IDs: []string{"o2", "o9"}}, []string{"o2"}},
		{"date eq day", "Observation", store.DateMatch{Param: "date", Prefix: store.EQ, Low: day(2), High: day(3)}, []string{"o2"}},
		{"date eq month", "Observation", store.DateMatch{Param: "date", Prefix: store.EQ, Low: day(1), High: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).UnixMicro()}, []string{"o1", "o2", "o3", "o4"}},
		{"date gt", "Observation", store.DateMatch{Param: "date", Prefix: store.GT, Low: day(2), High: day(3)}, []string{"o3", "o4"}},
		{"date ge", "Observation", store.DateMatch{Param: "date", Prefix: store.GE, Low: day(2), High: day(3)}, []string{"o2", "o3", "o4"}},
		{"date lt", "Observation", store.DateMatch{Param: "date", Prefix: store.LT, Low: day(2), High: day(3)}, []string{"o1"}},
		{"date le", "Observation", store.DateMatch{Param: "date", Prefix: store.LE, Low: day(2), High: day(3)}, []string{"o1", "o2"}},
		{"date ne", "Observation", store.DateMatch{Param: "date", Prefix: store.NE, Low: day(2), High: day(3)}, []string{"o1", "o3", "o4"}},
		{"date sa", "Observation", store.DateMatch{Param: "date", Prefix: store.SA, Low: day(2), High: day(3)}, []string{"o3", "o4"}},
		{"date eb", "Observation", store.DateMatch{Param: "date", Prefix: store.EB, Low: day(3), High: day(4)}, []string{"o1", "o2"}},
		{"lastUpdated", "Observation", store.DateMatch{Param: "_lastUpdated", Prefix: store.GT, Low: 0, High: day(1)}, []string{"o1", "o2", "o3", "o4"}},
		{"quantity eq range", "Observation", store.NumberMatch{Param: "value-quantity", Quantity: true, Prefix: store.EQ, Low: 2.45, High: 2.55}, []string{"o2"}},
		{"quantity gt with code", "Observation", store.NumberMatch{Param: "value-quantity", Quantity: true, Prefix: store.GT, Value: 2.5, System: "http://unitsofmeasure.org", Code: "kg"}, []string{"o3", "o4"}},
		{"quantity wrong unit", "Observation", store.NumberMatch{Param: "value-quantity", Quantity: true, Prefix: store.GT, Value: 0, Code: "lb"}, nil},
		{"number le", "Patient", store.NumberMatch{Param: "n", Prefix: store.LE, Value: 4}, []string{"p1"}},
		{"uri exact", "Patient", store.URIMatch{Param: "_profile", Value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}, []string{"p1", "p2", "p3"}},
		{"uri below", "Patient", store.URIMatch{Param: "_profile", Value: "http://hl7.org/fhir/us/core/", Below: true}, []string{"p1", "p2", "p3"}},
		{"uri above", "Patient", store.URIMatch{Param: "_profile", Value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|6.1.0", Above: true}, []string{"p1", "p2", "p3"}},
		{"missing true", "Patient", store.Missing{Kind: "token", Param: "gender", Missing: true}, []string{"p1", "p2", "p3"}},
		{"missing false", "Observation", store.Missing{Kind: "date", Param: "date"}, []string{"o1", "o2", "o3", "o4"}},
		{"chain", "Observation", store.Chain{Param: "subject", TargetType: "Patient", Where: store.StringMatch{Param: "family", Value: "shawn", Mode: store.StringExact}}, []string{"o2", "o4"}},
		{"compartment", "Observation", store.InCompartment{Patients: []string{"p2"}}, []string{"o2", "o4"}},
		{"empty or", "Observation", store.Or{}, nil},
		// ANDs whose driver's row keys are filtered before the resources'
		// rows are read, with filters on those rows after (sqlstore:
		// condBuilder.driven).
		{"driven: keys then rows", "Observation", store.And{store.RefMatch{Param: "subject", ID: "p1"}, store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "a"}, store.DateMatch{Param: "date", Prefix: store.GE, Low: day(1), High: day(2)}, store.IDIn{IDs: []string{"o3", "o4"}}, store.DateMatch{Param: "_lastUpdated", Prefix: store.GT, Low: 0, High: day(1)}, store.Or{store.InCompartment{Patients: []string{"p1"}}}}, []string{"o3"}},
		{"driven: compartment, not", "Observation", store.And{store.InCompartment{Patients: []string{"p2"}}, store.Not{Cond: store.TokenMatch{Param: "code", AnySystem: true, Code: "c"}}}, []string{"o2"}},
		{"driven: the reference to a compartment's patient", "Observation", store.And{store.Or{store.InCompartment{Patients: []string{"p1", "p2"}}}, store.RefMatch{Param: "subject", ID: "p2"}, store.TokenMatch{Param: "code", AnySystem: true, Code: "c"}}, []string{"o4"}},
		{"driven: code, chain, or", "Observation", store.And{store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "a"}, store.Chain{Param: "subject", TargetType: "Patient", Where: store.StringMatch{Param: "family", Value: "shaw", Mode: store.StringExact}}, store.Or{store.DateMatch{Param: "date", Prefix: store.EQ, Low: day(1), High: day(2)}, store.IDIn{IDs: []string{"o3"}}}}, []string{"o1", "o3"}},
		{"driven: nothing passes", "Observation", store.And{store.RefMatch{Param: "subject", ID: "p1"}, store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "b"}}, nil},
	}
	for _, tc := range cases {
		res, err := s.Search(c, store.Query{Type: tc.typ, Where: tc.cond, Page: store.Page{Count: 50, Total: true}})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := ids(res)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) || res.Total != len(tc.want) {
			t.Errorf("%s: got %v (total %d), want %v", tc.name, got, res.Total, tc.want)
		}
	}
}

func testFHIRPaging(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	for i := 1; i <= 7; i++ {
		put(t, s, obs(fmt.Sprintf("o%d", i), "p1", "a", 8-i)) // dates descending with id
	}
	var seen []string
	var after int64
	for page := 0; page < 10; page++ {
		res, err := s.Search(c, store.Query{Type: "Observation", Page: store.Page{Count: 3, After: after}})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, ids(res)...)
		if !res.More {
			break
		}
		after = res.Resources[len(res.Resources)-1].Key
		if page == 0 {
			// A resource created between pages appears at the end, not twice.
			put(t, s, obs("o8", "p1", "a", 20))
		}
	}
	if want := []string{"o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"}; !slices.Equal(seen, want) {
		t.Fatalf("keyset pages = %v, want %v", seen, want)
	}
	// Sorted keyset paging: o8 is newest; dates descend with the id, so by
	// date the order is o7 o6 ... o1 o8. A resource inserted between pages
	// before the cursor is not repeated, one after it appears.
	byDate := []store.Sort{{Param: "date", Kind: "date"}}
	res, err := s.Search(c, store.Query{Type: "Observation", Sort: byDate, Page: store.Page{Count: 3}})
	if err != nil || !slices.Equal(ids(res), []string{"o7", "o6", "o5"}) || !res.More || len(res.Resources[2].SortValues) != 1 {
		t.Fatalf("sort by date, first page = %v more=%v, %v", ids(res), res.More, err)
	}
	last := res.Resources[2]
	put(t, s, obs("early", "p1", "a", 1)) // sorts before the cursor: not shown
	put(t, s, obs("late", "p1", "a", 25)) // sorts after it: shown
	var rest []string
	for {
		res, err = s.Search(c, store.Query{Type: "Observation", Sort: byDate, Page: store.Page{Count: 3, After: last.Key, AfterValues: last.SortValues}})
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, ids(res)...)
		if !res.More {
			break
		}
		last = res.Resources[len(res.Resources)-1]
	}
	if want := []string{"o4", "o3", "o2", "o1", "o8", "late"}; !slices.Equal(rest, want) {
		t.Fatalf("sorted keyset pages after the first = %v, want %v", rest, want)
	}
	put(t, s, store.Write{Type: "Observation", ID: "early", Delete: true})
	put(t, s, store.Write{Type: "Observation", ID: "late", Delete: true})
	res, err = s.Search(c, store.Query{Type: "Observation", Sort: []store.Sort{{Param: "code", Kind: "token"}, {Param: "date", Kind: "date", Desc: true}}, Page: store.Page{Count: 2}})
	if err != nil || !slices.Equal(ids(res), []string{"o8", "o1"}) {
		t.Fatalf("sort by code, -date = %v, %v", ids(res), err)
	}
	// Resources without the sort value come last in both directions.
	put(t, s, store.Write{Type: "Observation", ID: "nodate", Body: []byte(`{"resourceType":"Observation"}`)})
	for _, desc := range []bool{false, true} {
		res, err = s.Search(c, store.Query{Type: "Observation", Sort: []store.Sort{{Param: "date", Kind: "date", Desc: desc}}, Page: store.Page{Count: 20}})
		if err != nil || len(res.Resources) != 9 || res.Resources[8].ID != "nodate" {
			t.Fatalf("sort desc=%v: %v, %v", desc, ids(res), err)
		}
	}
	res, err = s.Search(c, store.Query{Type: "Observation", Page: store.Page{Count: 0, Total: true}})
	if err != nil || res.Total != 9 || len(res.Resources) != 0 {
		t.Fatalf("count-only = %+v, %v", res, err)
	}
	// The total counts every match, whether the page holds all of them,
	// only some, or starts after a cursor.
	first, err := s.Search(c, store.Query{Type: "Observation", Page: store.Page{Count: 1}})
	if err != nil || len(first.Resources) != 1 {
		t.Fatalf("first page = %v, %v", ids(first), err)
	}
	for _, pg := range []store.Page{{Count: 20}, {Count: 9}, {Count: 4}, {Count: 20, After: first.Resources[0].Key}} {
		pg.Total = true
		res, err := s.Search(c, store.Query{Type: "Observation", Page: pg})
		if err != nil || res.Total != 9 {
			t.Fatalf("total with page %+v = %d, %v", pg, res.Total, err)
		}
	}
}

func testFHIRAccess(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	put(t, s, patient("p1", "a"))
	put(t, s, patient("p2", "b"))
	put(t, s, obs("o1", "p1", "lab", 1))
	put(t, s, obs("o2", "p2", "lab", 1))
	mine := store.InCompartment{Patients: []string{"p1"}}
	if _, err := s.ReadResource(c, "Observation", "o1", mine); err != nil {
		t.Fatalf("own resource: %v", err)
	}
	if _, err := s.ReadResource(c, "Observation", "o2", mine); !errors.Is(err, store.ErrAccessDenied) {
		t.Fatalf("other patient's resource: %v, want ErrAccessDenied", err)
	}
	// A deleted resource of another patient is still denied (not "gone").
	put(t, s, store.Write{Type: "Observation", ID: "o2", Delete: true})
	if _, err := s.ReadResource(c, "Observation", "o2", mine); !errors.Is(err, store.ErrAccessDenied) {
		t.Fatalf("other patient's deleted resource: %v, want ErrAccessDenied", err)
	}
	// Moving a resource out of the compartment is refused and changes nothing.
	w := obs("o1", "p2", "lab", 1)
	w.Access = mine
	err := s.WriteFHIR(c, func(tx store.FHIRTx) error { _, err := tx.Put(c, w); return err })
	if !errors.Is(err, store.ErrAccessDenied) {
		t.Fatalf("move out of compartment: %v", err)
	}
	if r, _ := s.ReadResource(c, "Observation", "o1", mine); r.Version != 1 {
		t.Fatalf("after refused write o1 is v%d", r.Version)
	}
	// Creating into another compartment is refused too.
	w = obs("o3", "p2", "lab", 1)
	w.Access = mine
	err = s.WriteFHIR(c, func(tx store.FHIRTx) error { _, err := tx.Put(c, w); return err })
	if !errors.Is(err, store.ErrAccessDenied) {
		t.Fatalf("create in another compartment: %v", err)
	}
	if _, err := s.ReadResource(c, "Observation", "o3", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused create was stored: %v", err)
	}
	// Patients linked to a practitioner by an Encounter's participant.
	put(t, s, store.Write{Type: "Encounter", ID: "e1", Body: []byte(`{"resourceType":"Encounter"}`),
		Index: store.Index{Refs: []store.RefIndex{{Param: "participant", Type: "Practitioner", ID: "dr1"}}, Patients: []string{"p2"}}})
	linked := store.LinkedPatients{Type: "Practitioner", ID: "dr1", Via: []store.Link{{Type: "Encounter", Param: "participant"}, {Type: "Patient", Param: "general-practitioner"}}}
	res, err := s.Search(c, store.Query{Type: "Observation", Where: linked, Page: store.Page{Count: 10}})
	if err != nil || !slices.Equal(ids(res), []string{}) && !slices.Equal(ids(res), []string(nil)) {
		t.Fatalf("linked patients (o2 deleted) = %v, %v", ids(res), err)
	}
	if res, err := s.Search(c, store.Query{Type: "Patient", Where: linked, Page: store.Page{Count: 10}}); err != nil || !slices.Equal(ids(res), []string{"p2"}) {
		t.Fatalf("linked Patient = %v, %v", ids(res), err)
	}
	if res, err := s.Search(c, store.Query{Type: "Patient", Where: store.LinkedPatients{Type: "Practitioner", ID: "dr2", Via: linked.Via}, Page: store.Page{Count: 10}}); err != nil || len(res.Resources) != 0 {
		t.Fatalf("patients of an unlinked practitioner = %v, %v", ids(res), err)
	}
	// Links: a DocumentReference places a Binary in its patient's compartment,
	// and stops doing so when it changes.
	put(t, s, store.Write{Type: "Binary", ID: "b1", Body: []byte(`{"resourceType":"Binary","contentType":"text/plain"}`)})
	doc := store.Write{Type: "DocumentReference", ID: "d1", Body: []byte(`{"resourceType":"DocumentReference"}`),
		Index: store.Index{Patients: []string{"p1"}, Links: []store.Membership{{Type: "Binary", ID: "b1", Patient: "p1"}}}}
	put(t, s, doc)
	if _, err := s.ReadResource(c, "Binary", "b1", mine); err != nil {
		t.Fatalf("linked Binary: %v", err)
	}
	doc.Index.Links = nil
	put(t, s, doc)
	if _, err := s.ReadResource(c, "Binary", "b1", mine); !errors.Is(err, store.ErrAccessDenied) {
		t.Fatalf("unlinked Binary: %v", err)
	}
	// A membership given before its resource exists counts once it does,
	// whether the compartment drives a search or filters it, beside the
	// memberships of resources by their own content.
	put(t, s, store.Write{Type: "DocumentReference", ID: "d2", Body: []byte(`{"resourceType":"DocumentReference"}`),
		Index: store.Index{Patients: []string{"p1"}, Links: []store.Membership{{Type: "Binary", ID: "b2", Patient: "p1"}, {Type: "Binary", ID: "b3", Patient: "p1"}}}})
	put(t, s, store.Write{Type: "Binary", ID: "b2", Body: []byte(`{"resourceType":"Binary","contentType":"text/plain"}`)})
	put(t, s, store.Write{Type: "Binary", ID: "b4", Body: []byte(`{"resourceType":"Binary","contentType":"text/plain"}`),
		Index: store.Index{Patients: []string{"p1"}}})
	if _, err := s.ReadResource(c, "Binary", "b2", mine); err != nil {
		t.Fatalf("Binary linked before it existed: %v", err)
	}
	for _, q := range []store.Cond{mine, store.And{mine, store.IDIn{IDs: []string{"b1", "b2", "b4"}}}, store.And{store.IDIn{IDs: []string{"b1", "b2", "b4"}}, store.Or{mine, mine}}} {
		res, err := s.Search(c, store.Query{Type: "Binary", Where: q, Page: store.Page{Count: 10}})
		if got := ids(res); err != nil || !slices.Equal(got, []string{"b2", "b4"}) {
			t.Fatalf("p1's Binaries (%#v) = %v, %v; want [b2 b4]", q, got, err)
		}
	}
}

func testFHIRIncludes(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	put(t, s, patient("p1", "a"))
	put(t, s, obs("o1", "p1", "x", 1))
	put(t, s, obs("o2", "p1", "y", 2))
	put(t, s, store.Write{Type: "Provenance", ID: "prov1", Body: []byte(`{"resourceType":"Provenance"}`),
		Index: store.Index{Refs: []store.RefIndex{{Param: "target", Type: "Observation", ID: "o1"}}}})
	res, err := s.Search(c, store.Query{Type: "Observation", Page: store.Page{Count: 10}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []int64
	for _, f := range res.Resources {
		keys = append(keys, f.Key)
	}
	inc, err := s.Includes(c, keys, store.Include{SourceType: "Observation", Param: "subject", TargetType: "Patient"}, 100)
	if err != nil || len(inc) != 1 || inc[0].ID != "p1" {
		t.Fatalf("_include subject = %+v, %v", inc, err)
	}
	// A Provenance is reachable through the compartment of what it targets.
	for pat, want := range map[string]int{"p1": 1, "p2": 0} {
		res, err := s.Search(c, store.Query{Type: "Provenance", Where: store.RefersToCompartment{Param: "target", Patients: []string{pat}}, Page: store.Page{Count: 5}})
		if err != nil || len(res.Resources) != want {
			t.Fatalf("Provenance targeting %s's resources = %v, %v; want %d", pat, ids(res), err, want)
		}
	}
	rev, err := s.Includes(c, keys, store.Include{Rev: true, SourceType: "Provenance", Param: "target"}, 100)
	if err != nil || len(rev) != 1 || rev[0].ID != "prov1" {
		t.Fatalf("_revinclude Provenance:target = %+v, %v", rev, err)
	}
	// History paging across types, newest first.
	var all []string
	q := store.HistoryQuery{Count: 2}
	for {
		h, more, err := s.History(c, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h {
			all = append(all, e.Type+"/"+e.ID)
		}
		if !more {
			break
		}
		last := h[len(h)-1]
		q.BeforeTime, q.BeforeKey = last.LastUpdated, last.Key
	}
	if want := []string{"Provenance/prov1", "Observation/o2", "Observation/o1", "Patient/p1"}; !slices.Equal(all, want) {
		t.Fatalf("history = %v, want %v", all, want)
	}
	since := time.Now().Add(time.Hour)
	if h, _, err := s.History(c, store.HistoryQuery{Since: since, Count: 5}); err != nil || len(h) != 0 {
		t.Fatalf("history since the future = %d entries, %v", len(h), err)
	}
}

// testFHIRPutNew: the bulk create path stores exactly what Put stores
// (every search condition finds the same resources on a store loaded with
// PutNew as on one loaded with Put), and refuses an id that exists.
func testFHIRPutNew(t *testing.T, b Backend) {
	bulk, _ := migrated(t, b)
	one, _ := migrated(t, b)
	c := ctx(t)
	var ws []store.Write
	ws = append(ws, patient("p1", "shaw"), patient("p2", "brooks"))
	for i := range 700 { // more than one full multi-row INSERT per table
		w := obs(fmt.Sprintf("o%d", i), []string{"p1", "p2"}[i%2], []string{"a", "b", "c"}[i%3], 1+i%28)
		ws = append(ws, w)
	}
	// A resource that puts another into a compartment (as a CareTeam does).
	ws = append(ws, store.Write{Type: "Practitioner", ID: "pr1", Body: []byte(`{"resourceType":"Practitioner"}`)})
	ws = append(ws, store.Write{Type: "Group", ID: "g1", Body: []byte(`{"resourceType":"Group","type":"person","actual":true}`),
		Index: store.Index{Links: []store.Membership{{Type: "Practitioner", ID: "pr1", Patient: "p1"}}}})
	if err := bulk.WriteFHIR(c, func(tx store.FHIRTx) error { return tx.PutNew(c, ws) }); err != nil {
		t.Fatalf("PutNew: %v", err)
	}
	for _, w := range ws {
		put(t, one, w)
	}
	r, err := bulk.ReadResource(c, "Observation", "o7", nil)
	if err != nil || r.Version != 1 || !strings.Contains(string(r.Body), `"versionId":"1"`) {
		t.Fatalf("a PutNew resource: v%d %s %v", r.Version, r.Body, err)
	}
	h, _, err := bulk.History(c, store.HistoryQuery{Type: "Observation", ID: "o7", Count: 5})
	if err != nil || len(h) != 1 || h[0].Method != "create" {
		t.Fatalf("history of a PutNew resource: %+v %v", h, err)
	}
	for _, q := range []store.Query{
		{Type: "Observation", Where: store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "a"}},
		{Type: "Observation", Where: store.InCompartment{Patients: []string{"p2"}}},
		{Type: "Observation", Where: store.DateMatch{Param: "date", Prefix: store.GE, Low: time.Date(2024, 1, 20, 0, 0, 0, 0, time.UTC).UnixMicro()}},
		{Type: "Observation", Where: store.NumberMatch{Param: "value-quantity", Quantity: true, Prefix: store.GT, Value: 10, AnySystem: true, Code: "kg"}},
		{Type: "Observation", Where: store.RefMatch{Param: "subject", Type: "Patient", ID: "p1"}},
		{Type: "Patient", Where: store.StringMatch{Param: "family", Value: "bro"}},
		{Type: "Patient", Where: store.URIMatch{Param: "_profile", Value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}},
		{Type: "Practitioner", Where: store.InCompartment{Patients: []string{"p1"}}},
	} {
		q.Page = store.Page{Count: 1000, Total: true}
		got, err1 := bulk.Search(c, q)
		want, err2 := one.Search(c, q)
		if err1 != nil || err2 != nil {
			t.Fatalf("search %+v: %v %v", q.Where, err1, err2)
		}
		if g, w := ids(got), ids(want); !slices.Equal(g, w) || got.Total != want.Total || len(w) == 0 {
			t.Errorf("search %T %+v: PutNew store finds %d (%v...), Put store %d", q.Where, q.Where, len(g), head(g), len(w))
		}
	}
	// An id written before: the whole call fails with ErrConflict, and the
	// transaction's other creates are rolled back with it.
	err = bulk.WriteFHIR(c, func(tx store.FHIRTx) error {
		return tx.PutNew(c, []store.Write{patient("p9", "new"), patient("p1", "again")})
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutNew of an existing id: %v, want ErrConflict", err)
	}
	if _, err := bulk.ReadResource(c, "Patient", "p9", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a create of the failed PutNew call survived: %v", err)
	}

	// A body prepared by MetaTemplate is stamped in place with the time
	// of the write, and stored exactly as SetMeta would have made it; the
	// recorded method is the Write's.
	tmpl, at, err := store.MetaTemplate([]byte(`{"resourceType":"Patient","meta":{"source":"#x"},"active":true}`), "Patient", "p10", 1)
	if err != nil || at == 0 {
		t.Fatalf("MetaTemplate: %d %v", at, err)
	}
	if err := bulk.WriteFHIR(c, func(tx store.FHIRTx) error {
		return tx.PutNew(c, []store.Write{{Type: "Patient", ID: "p10", Body: tmpl, MetaAt: at, Method: "update"}})
	}); err != nil {
		t.Fatalf("PutNew of a templated body: %v", err)
	}
	r, err = bulk.ReadResource(c, "Patient", "p10", nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := store.SetMeta([]byte(`{"resourceType":"Patient","meta":{"source":"#x"},"active":true}`), "Patient", "p10", 1, r.LastUpdated)
	if string(r.Body) != string(want) || r.LastUpdated.Year() < 2000 {
		t.Errorf("templated body stored as %s, want %s", r.Body, want)
	}
	h, _, err = bulk.History(c, store.HistoryQuery{Type: "Patient", ID: "p10", Count: 5})
	if err != nil || len(h) != 1 || h[0].Method != "update" || string(h[0].Body) != string(want) {
		t.Fatalf("history of a PutNew with Method update: %+v %v", h, err)
	}
	// Methods that change within one call: each history row has its
	// resource's method, body and time.
	if err := bulk.WriteFHIR(c, func(tx store.FHIRTx) error {
		return tx.PutNew(c, []store.Write{patient("p11", "a"), {Type: "Patient", ID: "p12", Body: []byte(`{"resourceType":"Patient","active":false}`), Method: "update"}, patient("p13", "c")})
	}); err != nil {
		t.Fatalf("PutNew with mixed methods: %v", err)
	}
	for id, method := range map[string]string{"p11": "create", "p12": "update", "p13": "create"} {
		r, err := bulk.ReadResource(c, "Patient", id, nil)
		h, _, herr := bulk.History(c, store.HistoryQuery{Type: "Patient", ID: id, Count: 5})
		if err != nil || herr != nil || len(h) != 1 || h[0].Method != method || string(h[0].Body) != string(r.Body) || !h[0].LastUpdated.Equal(r.LastUpdated) || h[0].Version != 1 {
			t.Errorf("Patient/%s after a PutNew with mixed methods: history %+v (%v), resource v%d %s (%v); want one %s row like the resource", id, h, herr, r.Version, r.Body, err, method)
		}
	}

	// Written names the ids ever written, deleted ones too.
	put(t, bulk, store.Write{Type: "Patient", ID: "p2", Delete: true})
	var written map[string]bool
	if err := bulk.WriteFHIR(c, func(tx store.FHIRTx) error {
		var err error
		written, err = tx.Written(c, "Patient", []string{"p1", "p2", "p9", "o7", "p10"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(written, map[string]bool{"p1": true, "p2": true, "p10": true}) {
		t.Errorf("Written = %v, want p1, p2 (deleted) and p10", written)
	}
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}
