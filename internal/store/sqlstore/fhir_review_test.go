package sqlstore_test

// Security review of the FHIR store (fhir.go, fhir_query.go): conditions
// built from client input that one engine or both cannot run. Each
// TestReview* test fails on the code it was written against and is
// skipped with a REVIEW: note until the finding is fixed.

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"smartgate/internal/pgtest"
	"smartgate/internal/store"
	"smartgate/internal/store/sqlstore"
)

// reviewStore opens a migrated store on backend ("sqlite" or "postgres")
// holding three Observations.
func reviewStore(t *testing.T, backend string) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "review.db")
	if backend == "postgres" {
		pgtest.Shared(t)
		dsn = pgtest.NewDatabase(t)
	}
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	err = db.WriteFHIR(ctx, func(tx store.FHIRTx) error {
		for i := 1; i <= 3; i++ {
			id := fmt.Sprintf("o%d", i)
			_, err := tx.Put(ctx, store.Write{Type: "Observation", ID: id,
				Body: []byte(`{"resourceType":"Observation","id":"` + id + `","status":"final"}`),
				Index: store.Index{
					Tokens:   []store.TokenIndex{{Param: "code", System: "http://loinc.org", Code: fmt.Sprint(i)}},
					Dates:    []store.DateIndex{{Param: "date", Low: int64(i) * 1e12, High: int64(i)*1e12 + 1}},
					Patients: []string{"p1"},
				}})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return db
}

// TestReviewStoreWideConditions: condBuilder gives every OR value its own
// "rid IN (SELECT ...)" term and every id its own bind variable, so
// conditions the FHIR layer builds from one ordinary-looking request fail
// on SQLite (expression tree deeper than 1000, more than 32766 variables)
// and on PostgreSQL (more than 65535 bind parameters). The API answers
// those errors with 500. A store should compile a list of same-parameter
// token values to one IN list. The API now caps what a request can build
// (100 values a parameter, 1000 over a search: fhir.maxValues), so no
// request reaches these limits; the store itself still fails on them.
func TestReviewStoreWideConditions(t *testing.T) {
	t.Skip("REVIEW: an OR of 1200 token values, or an IDIn of 70000 ids, is a SQL error (expression depth / bind variable limits)")
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := reviewStore(t, backend)
			var or store.Or
			for i := 0; i < 1200; i++ {
				or = append(or, store.TokenMatch{Param: "code", AnySystem: true, Code: fmt.Sprint(i)})
			}
			ids := make([]string, 70000)
			for i := range ids {
				ids[i] = fmt.Sprint("id", i)
			}
			for name, c := range map[string]store.Cond{"OR of 1200 codes": or, "IDIn of 70000 ids": store.IDIn{IDs: ids}} {
				res, err := db.Search(context.Background(), store.Query{Type: "Observation", Where: c, Page: store.Page{Count: 10, Total: true}})
				if err != nil {
					t.Errorf("%s: Search: %.200v", name, err)
				} else if res.Total != 3 && name == "OR of 1200 codes" {
					t.Errorf("%s: total %d, want 3", name, res.Total)
				}
			}
		})
	}
}

// TestReviewStoreEnginesDisagreeOnBadValues: the same Query succeeds on
// SQLite and fails on PostgreSQL when a value holds a NUL byte or invalid
// UTF-8, or when a keyset cursor's AfterValues do not have the sort
// column's type (a forged _cursor): PostgreSQL refuses the statement. The
// conformance suite promises one behaviour on both engines; the store (or
// the API before it) should treat such values as matching nothing, or
// refuse them as the caller's error.
func TestReviewStoreEnginesDisagreeOnBadValues(t *testing.T) {
	t.Skip("REVIEW: NUL bytes, invalid UTF-8 and mistyped AfterValues are SQL errors on PostgreSQL but not on SQLite")
	queries := map[string]store.Query{
		"IDIn NUL":          {Type: "Observation", Where: store.IDIn{IDs: []string{"o1\x00"}}, Page: store.Page{Count: 10}},
		"TokenMatch \\xff":  {Type: "Observation", Where: store.TokenMatch{Param: "code", AnySystem: true, Code: "\xff\xfe"}, Page: store.Page{Count: 10}},
		"date AfterValues":  {Type: "Observation", Sort: []store.Sort{{Param: "date", Kind: "date"}}, Page: store.Page{Count: 10, After: 1, AfterValues: []any{"abc"}}},
		"token AfterValues": {Type: "Observation", Sort: []store.Sort{{Param: "code", Kind: "token"}}, Page: store.Page{Count: 10, After: 1, AfterValues: []any{int64(5)}}},
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := reviewStore(t, backend)
			for name, q := range queries {
				if _, err := db.Search(context.Background(), q); err != nil {
					t.Errorf("%s: Search: %.200v", name, err)
				}
			}
		})
	}
}
