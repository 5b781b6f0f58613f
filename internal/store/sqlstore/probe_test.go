package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"smartgate/internal/store"
)

// putDated writes six Observations, o1 to o6, dated the 1st to the 6th of
// January 2024, of code 8867-4 (odd) or 9279-1 (even), all of category
// laboratory.
func putDated(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	err := db.WriteFHIR(ctx, func(tx store.FHIRTx) error {
		for i := 1; i <= 6; i++ {
			code := "8867-4"
			if i%2 == 0 {
				code = "9279-1"
			}
			_, err := tx.Put(ctx, store.Write{Type: "Observation", ID: fmt.Sprintf("o%d", i),
				Body: []byte(fmt.Sprintf(`{"resourceType":"Observation","id":"o%d","status":"final"}`, i)),
				Index: store.Index{
					Tokens: []store.TokenIndex{{Param: "code", System: "http://loinc.org", Code: code}, {Param: "category", Code: "laboratory"}},
					Dates:  []store.DateIndex{{Param: "date", Low: jan(i), High: jan(i) + 86400e6}},
				}})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func jan(d int) int64 { return time.Date(2024, 1, d, 0, 0, 0, 0, time.UTC).UnixMicro() }

// searchIDs runs a search of Observations and returns the ids found and
// the total.
func searchIDs(t *testing.T, db *DB, where store.Cond) (string, int) {
	t.Helper()
	res, err := db.Search(context.Background(), store.Query{Type: "Observation", Where: where, Page: store.Page{Count: 10, Total: true}})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	var ids []string
	for _, r := range res.Resources {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, ","), res.Total
}

// TestProbeDriver: over every patient, the term with the fewest
// candidates drives, narrow when they are at most probeLimit, whatever the kind
// ranking (a token first, in the order of the parameters) would choose,
// and the search still finds exactly the matches; a term with fewer
// candidates than the ranking's choice drives too, counted up to ten
// times probeLimit; when a compartment or reference drives, nothing is
// probed.
func TestProbeDriver(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	putDated(t, db)
	code := store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "8867-4"}  // o1, o3, o5
	category := store.TokenMatch{Param: "category", AnySystem: true, Code: "laboratory"} // all six
	from5 := store.DateMatch{Param: "date", Prefix: store.GE, Low: jan(5), High: jan(6)} // o5, o6
	from2 := store.DateMatch{Param: "date", Prefix: store.GE, Low: jan(2), High: jan(3)} // o2 to o6

	defer func(n int) { probeLimit = n }(probeLimit)
	probeLimit = 3
	for _, c := range []struct {
		name   string
		where  store.And
		probed int    // probeDriver's choice
		narrow bool   // at most probeLimit rows
		drives string // the driver's parameter
		want   string
	}{
		{"a date of two rows before a code of three", store.And{code, from5}, 1, true, "date", "o5"},
		{"a code of three before a date of five", store.And{code, from2}, 0, true, "code", "o3,o5"},
		{"a code of three before a category of six", store.And{category, code}, 1, true, "code", "o1,o3,o5"},
		{"a date of five before a category of six: fewer, not narrow", store.And{category, from2}, 1, false, "date", "o2,o3,o4,o5,o6"},
		{"a reference drives: no probe", store.And{code, from5, store.RefMatch{Param: "patient", ID: "p1"}}, -1, false, "patient", ""},
		{"a compartment drives: no probe", store.And{code, from5, store.InCompartment{Patients: []string{"p1"}}}, -1, false, "", ""},
	} {
		probed, narrow, err := db.probeDriver(ctx, db.r, c.where, "Observation")
		if err != nil {
			t.Fatalf("%s: probeDriver: %v", c.name, err)
		}
		if probed != c.probed || narrow != c.narrow {
			t.Errorf("%s: probeDriver = %d, narrow %v; want %d, %v", c.name, probed, narrow, c.probed, c.narrow)
		}
		cb := &condBuilder{db: db, probed: probed + 1, probedNarrow: narrow}
		where := cb.build(c.where, "r", "Observation")
		if c.drives != "" && (len(cb.args) < 2 || cb.args[1] != c.drives) {
			t.Errorf("%s: the driver is %v, want %s:\n  %s", c.name, cb.args[:min(2, len(cb.args))], c.drives, where)
		}
		if c.drives == "date" {
			plan := strings.Join(queryPlan(t, db, "SELECT r.rid FROM fhir_resources r WHERE r.res_type = ? AND r.deleted = 0 AND "+where, append([]any{"Observation"}, cb.args...)...), "\n  ")
			if !strings.Contains(plan, "fhir_date_high (res_type=? AND param=? AND high>?)") || !strings.Contains(plan, "fhir_token_rid (rid=?") {
				t.Errorf("%s: want the date's range of fhir_date_high to drive and the code to be looked up by row key:\n  %s", c.name, plan)
			}
		}
		if c.want == "" {
			continue
		}
		if ids, total := searchIDs(t, db, c.where); ids != c.want || total != strings.Count(c.want, ",")+1 {
			t.Errorf("%s: Search = %s (total %d); want %s", c.name, ids, total, c.want)
		}
	}
}

// TestPostgresNarrowDateArray: on a real PostgreSQL a narrow date that
// drives, alone or before a code, is written rid = ANY(ARRAY(...)), so
// that PostgreSQL runs it first instead of walking fhir_date_rid in
// row-key order for the page's ORDER BY rid LIMIT; a wide one keeps IN.
func TestPostgresNarrowDateArray(t *testing.T) {
	ctx := context.Background()
	db := migratedPostgres(t)
	putDated(t, db)
	defer func(n int) { probeLimit = n }(probeLimit)
	probeLimit = 2
	code := store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "8867-4"}
	from5 := store.DateMatch{Param: "date", Prefix: store.GE, Low: jan(5), High: jan(6)}
	from2 := store.DateMatch{Param: "date", Prefix: store.GE, Low: jan(2), High: jan(3)}
	for _, c := range []struct {
		name  string
		where store.And
		array bool
		want  string
	}{
		{"a narrow date alone", store.And{from5}, true, "o5,o6"},
		{"a narrow date as the whole condition", nil, true, "o5,o6"},
		{"a narrow date before a code", store.And{code, from5}, true, "o5"},
		{"a wide date alone", store.And{from2}, false, "o2,o3,o4,o5,o6"},
		{"a wide date and a code", store.And{code, from2}, false, "o3,o5"},
	} {
		var cond store.Cond = c.where
		if c.where == nil {
			cond = from5
		}
		probed, narrow, err := db.probeDriver(ctx, db.r, cond, "Observation")
		if err != nil {
			t.Fatalf("%s: probeDriver: %v", c.name, err)
		}
		if c.where != nil {
			cb := &condBuilder{db: db, probed: probed + 1, probedNarrow: narrow}
			where := cb.build(c.where, "r", "Observation")
			if got := strings.HasPrefix(strings.TrimLeft(where, "("), "r.rid = ANY(ARRAY(SELECT "); got != c.array {
				t.Errorf("%s: written as an array: %v, want %v:\n  %s", c.name, got, c.array, where)
			}
		} else if probed != 0 || !narrow {
			t.Errorf("%s: probeDriver = %d, narrow %v; want the date (0), narrow", c.name, probed, narrow)
		}
		if ids, total := searchIDs(t, db, cond); ids != c.want || total != strings.Count(c.want, ",")+1 {
			t.Errorf("%s: Search = %s (total %d); want %s", c.name, ids, total, c.want)
		}
	}
}
