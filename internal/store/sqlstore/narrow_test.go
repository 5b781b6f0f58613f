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
// January 2024, of code 8867-4 (odd) or 9279-1 (even).
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
					Tokens: []store.TokenIndex{{Param: "code", System: "http://loinc.org", Code: code}},
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

// TestNarrowDateDrives: over every patient, a date whose range holds at
// most narrowDateLimit rows drives instead of a code (pickDriver ranks a
// token first for want of frequencies), and the search still finds
// exactly the matches; a date of more rows, or any AND that a compartment
// or reference drives, leaves the plan as it was, without a probe.
func TestNarrowDateDrives(t *testing.T) {
	ctx := context.Background()
	db := migratedSQLite(t)
	putDated(t, db)
	day := jan
	code := store.TokenMatch{Param: "code", System: "http://loinc.org", Code: "8867-4"}
	from5 := store.DateMatch{Param: "date", Prefix: store.GE, Low: day(5), High: day(6)} // o5, o6
	from2 := store.DateMatch{Param: "date", Prefix: store.GE, Low: day(2), High: day(3)} // o2 to o6

	defer func(n int) { narrowDateLimit = n }(narrowDateLimit)
	narrowDateLimit = 2
	for _, c := range []struct {
		name   string
		where  store.And
		narrow bool
		want   []string
	}{
		{"a date of two rows drives", store.And{code, from5}, true, []string{"o5"}},
		{"a date of five rows does not", store.And{code, from2}, false, []string{"o3", "o5"}},
		{"a reference drives: no probe", store.And{code, from5, store.RefMatch{Param: "patient", ID: "p1"}}, false, nil},
		{"a compartment drives: no probe", store.And{code, from5, store.InCompartment{Patients: []string{"p1"}}}, false, nil},
	} {
		narrow, err := db.narrowDates(ctx, db.r, c.where, "Observation")
		if err != nil {
			t.Fatalf("%s: narrowDates: %v", c.name, err)
		}
		if got := len(narrow) > 0; got != c.narrow {
			t.Errorf("%s: narrowDates = %v; want a narrow date: %v", c.name, narrow, c.narrow)
		}
		cb := &condBuilder{db: db, narrow: narrow}
		where := cb.build(c.where, "r", "Observation")
		if drivesByDate := strings.HasPrefix(where, "(r.rid IN (SELECT d1.rid FROM (SELECT x.rid AS rid FROM fhir_date x "); drivesByDate != c.narrow {
			t.Errorf("%s: the date drives: %v, want %v:\n  %s", c.name, drivesByDate, c.narrow, where)
		}
		if c.narrow {
			plan := strings.Join(queryPlan(t, db, "SELECT r.rid FROM fhir_resources r WHERE r.res_type = ? AND r.deleted = 0 AND "+where, append([]any{"Observation"}, cb.args...)...), "\n  ")
			if !strings.Contains(plan, "fhir_date_high (res_type=? AND param=? AND high>?)") || !strings.Contains(plan, "fhir_token_rid (rid=?") {
				t.Errorf("%s: want the date's range of fhir_date_high to drive and the code to be looked up by row key:\n  %s", c.name, plan)
			}
		}
		if c.want == nil {
			continue
		}
		if ids, total := searchIDs(t, db, c.where); ids != strings.Join(c.want, ",") || total != len(c.want) {
			t.Errorf("%s: Search = %s (total %d); want %v", c.name, ids, total, c.want)
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
	defer func(n int) { narrowDateLimit = n }(narrowDateLimit)
	narrowDateLimit = 2
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
		narrow, err := db.narrowDates(ctx, db.r, cond, "Observation")
		if err != nil {
			t.Fatalf("%s: narrowDates: %v", c.name, err)
		}
		if c.where != nil {
			cb := &condBuilder{db: db, narrow: narrow}
			where := cb.build(c.where, "r", "Observation")
			if got := strings.HasPrefix(strings.TrimLeft(where, "("), "r.rid = ANY(ARRAY(SELECT "); got != c.array {
				t.Errorf("%s: written as an array: %v, want %v:\n  %s", c.name, got, c.array, where)
			}
		} else if len(narrow) != 1 {
			t.Errorf("%s: narrowDates = %v; want the date", c.name, narrow)
		}
		if ids, total := searchIDs(t, db, cond); ids != c.want || total != strings.Count(c.want, ",")+1 {
			t.Errorf("%s: Search = %s (total %d); want %s", c.name, ids, total, c.want)
		}
	}
}
