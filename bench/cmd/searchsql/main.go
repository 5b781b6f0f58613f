// Command searchsql runs the SQL of bench/data.sh's patient search alone,
// in the shapes the query builder has produced, against a copy of a seeded
// SQLite data set at schema 12 or later, and reports the CPU each costs:
//
//	searchsql -db /var/tmp/ds/smartgate.db [-n 2000] [-rounds 2]
//	searchsql -db /var/tmp/ds/smartgate.db -par 16 -conns 8 [-shape after]
//
// The first form runs every shape one statement at a time on one
// connection, in turn, so that each round compares them on the same host
// speed. The second runs one shape from -par goroutines over -conns
// connections: with SQLite's shared page cache (modernc.org/sqlite builds
// with SQLITE_ENABLE_MEMORY_MANAGEMENT), compare -par 2 -conns 2 with
// -par 1 -conns 1. The database is opened read-only. The searches are a
// patient's Observations of one LOINC code from a date, for 200 (patient,
// code, date) triples picked from the data set with a fixed seed, as
// data.sh's search mode sends them (patient=P&code=C&date=geD with P's
// patient/*.rs token, so also P's compartment).
//
// With -patient-tokens the tool first adds to the copy (opened read-write
// for it) a table that smartgate does not have: fhir_token_pt, one row per
// (compartment patient, token row) with the index (patient_id, res_type,
// param, code, system, rid), and adds the shape "patient-tokens" that
// drives the search from it: the measure of what such an index would save
// a search (docs/performance.md, "What is still missing"). It reports how
// long the table and its index took to build.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"smartgate/internal/store/sqlstore"
)

const cols = "r.rid, r.res_type, r.res_id, r.version, r.last_updated, r.deleted, r.body"

// Each shape binds ?1 the patient, ?2 the code, ?3 the date (unix µs).
var shapes = []struct{ name, sql string }{
	// 2ef8e26 (schema 11): the compartment drives; every candidate's row
	// is looked up, then the filters probe fhir_token_code and the rest.
	{"before", `SELECT ` + cols + ` FROM fhir_resources r WHERE r.res_type = 'Observation' AND r.deleted = 0 AND (r.rid IN (SELECT cr.rid FROM fhir_compartment c JOIN fhir_resources cr ON cr.res_type = c.res_type AND cr.res_id = c.res_id WHERE c.res_type = 'Observation' AND c.patient_id IN (?1)) AND EXISTS (SELECT 1 FROM fhir_token x INDEXED BY fhir_token_code WHERE x.rid = r.rid AND x.res_type = 'Observation' AND x.param = 'code' AND code = ?2 AND system = 'http://loinc.org') AND EXISTS (SELECT 1 FROM fhir_date x INDEXED BY fhir_date_rid WHERE x.rid = r.rid AND x.res_type = 'Observation' AND x.param = 'date' AND (high > ?3 OR (low >= ?3 AND high <= ?3))) AND EXISTS (SELECT 1 FROM fhir_ref x INDEXED BY fhir_ref_rid WHERE x.rid = r.rid AND x.res_type = 'Observation' AND x.param = 'patient' AND target_id = ?1)) ORDER BY r.rid LIMIT 51`},
	// The patient reference drives instead; filters still after the row.
	{"ref-drives", `SELECT ` + cols + ` FROM fhir_resources r WHERE r.res_type = 'Observation' AND r.deleted = 0 AND (r.rid IN (SELECT x.rid FROM fhir_ref x WHERE x.res_type = 'Observation' AND x.param = 'patient' AND x.target_id = ?1) AND EXISTS (SELECT 1 FROM fhir_token x INDEXED BY fhir_token_code WHERE x.rid = r.rid AND x.res_type = 'Observation' AND x.param = 'code' AND code = ?2 AND system = 'http://loinc.org') AND EXISTS (SELECT 1 FROM fhir_date x INDEXED BY fhir_date_rid WHERE x.rid = r.rid AND x.res_type = 'Observation' AND x.param = 'date' AND (high > ?3 OR (low >= ?3 AND high <= ?3))) AND EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.res_type = r.res_type AND c.res_id = r.res_id AND c.res_type = 'Observation' AND c.patient_id IN (?1))) ORDER BY r.rid LIMIT 51`},
	// ... and the key filters run inside the driver's subquery.
	{"keys-first", `SELECT ` + cols + ` FROM fhir_resources r WHERE r.res_type = 'Observation' AND r.deleted = 0 AND (r.rid IN (SELECT d1.rid FROM (SELECT x.rid AS rid FROM fhir_ref x WHERE x.res_type = 'Observation' AND x.param = 'patient' AND x.target_id = ?1) d1 WHERE EXISTS (SELECT 1 FROM fhir_token x INDEXED BY fhir_token_code WHERE x.rid = d1.rid AND x.res_type = 'Observation' AND x.param = 'code' AND code = ?2 AND system = 'http://loinc.org') AND EXISTS (SELECT 1 FROM fhir_date x INDEXED BY fhir_date_rid WHERE x.rid = d1.rid AND x.param = 'date' AND (high > ?3 OR (low >= ?3 AND high <= ?3)))) AND EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.res_type = r.res_type AND c.res_id = r.res_id AND c.res_type = 'Observation' AND c.patient_id IN (?1))) ORDER BY r.rid LIMIT 51`},
	// d7cfe0d (schema 12): ... and the code probe is fhir_token_rid's.
	{"after", `SELECT ` + cols + ` FROM fhir_resources r WHERE r.res_type = 'Observation' AND r.deleted = 0 AND (r.rid IN (SELECT d1.rid FROM (SELECT x.rid AS rid FROM fhir_ref x WHERE x.res_type = 'Observation' AND x.param = 'patient' AND x.target_id = ?1) d1 WHERE EXISTS (SELECT 1 FROM fhir_token x INDEXED BY fhir_token_rid WHERE x.rid = d1.rid AND x.param = 'code' AND code = ?2 AND system = 'http://loinc.org') AND EXISTS (SELECT 1 FROM fhir_date x INDEXED BY fhir_date_rid WHERE x.rid = d1.rid AND x.param = 'date' AND (high > ?3 OR (low >= ?3 AND high <= ?3)))) AND EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.res_type = r.res_type AND c.res_id = r.res_id AND c.res_type = 'Observation' AND c.patient_id IN (?1))) ORDER BY r.rid LIMIT 51`},
	// Schema 13: the compartment filter by row key.
	{"after-13", `SELECT ` + cols + ` FROM fhir_resources r WHERE r.res_type = 'Observation' AND r.deleted = 0 AND (r.rid IN (SELECT d1.rid FROM (SELECT x.rid AS rid FROM fhir_ref x WHERE x.res_type = 'Observation' AND x.param = 'patient' AND x.target_id = ?1) d1 WHERE EXISTS (SELECT 1 FROM fhir_token x INDEXED BY fhir_token_rid WHERE x.rid = d1.rid AND x.param = 'code' AND code = ?2 AND system = 'http://loinc.org') AND EXISTS (SELECT 1 FROM fhir_date x INDEXED BY fhir_date_rid WHERE x.rid = d1.rid AND x.param = 'date' AND (high > ?3 OR (low >= ?3 AND high <= ?3)))) AND EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.rid = r.rid AND c.patient_id IN (?1) AND c.res_type = 'Observation')) ORDER BY r.rid LIMIT 51`},
	// The drivers alone: the compartment's row keys, the reference's.
	{"compartment-keys", `SELECT cr.rid FROM fhir_compartment c JOIN fhir_resources cr ON cr.res_type = c.res_type AND cr.res_id = c.res_id WHERE c.res_type = 'Observation' AND c.patient_id IN (?1) AND ?2 IS NOT NULL AND ?3 IS NOT NULL`},
	{"reference-keys", `SELECT x.rid FROM fhir_ref x WHERE x.res_type = 'Observation' AND x.param = 'patient' AND x.target_id = ?1 AND ?2 IS NOT NULL AND ?3 IS NOT NULL`},
	// Schema 15 (a copy at schema 15 only; ?4 is the patient's key): the
	// patient's token rows of the code drive, from fhir_token_code.
	{"after-15", after15},
	// ... with the resource's row found by its row key alone.
	{"after-15-rowid", strings.Replace(after15, "WHERE r.res_type = 'Observation' AND r.deleted = 0", "WHERE +r.res_type = 'Observation' AND +r.deleted = 0", 1)},
}

// after15 is the search as schema 15 builds it (?4: the patient's key).
const after15 = `SELECT ` + cols + ` FROM fhir_resources r WHERE r.res_type = 'Observation' AND r.deleted = 0 AND (r.rid IN (SELECT d1.rid FROM (SELECT x.rid AS rid FROM fhir_token x WHERE x.res_type = 'Observation' AND x.param = 'code' AND x.code = ?2 AND x.patient_key IN (?4, 1, 0) AND x.system = 'http://loinc.org') d1 WHERE EXISTS (SELECT 1 FROM fhir_date x INDEXED BY fhir_date_rid WHERE x.rid = d1.rid AND x.param = 'date' AND (high > ?3 OR (low >= ?3 AND high <= ?3))) AND EXISTS (SELECT 1 FROM fhir_ref x INDEXED BY fhir_ref_rid WHERE x.rid = d1.rid AND x.param = 'patient' AND target_id = ?1)) AND (EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.rid = r.rid AND c.res_type = 'Observation' AND c.patient_id IN (?1)) OR EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.rid = 0 AND c.res_id = r.res_id AND c.res_type = 'Observation' AND c.patient_id IN (?1)))) ORDER BY r.rid LIMIT 51`

// patientTokens is the shape -patient-tokens adds: the patient's tokens
// of the code give the row keys (3 to 5 where the reference gave 104).
var patientTokens = struct{ name, sql string }{"patient-tokens", `SELECT ` + cols + ` FROM fhir_resources r WHERE r.res_type = 'Observation' AND r.deleted = 0 AND (r.rid IN (SELECT d1.rid FROM (SELECT x.rid AS rid FROM fhir_token_pt x WHERE x.patient_id = ?1 AND x.res_type = 'Observation' AND x.param = 'code' AND x.code = ?2 AND x.system = 'http://loinc.org') d1 WHERE EXISTS (SELECT 1 FROM fhir_date x INDEXED BY fhir_date_rid WHERE x.rid = d1.rid AND x.param = 'date' AND (high > ?3 OR (low >= ?3 AND high <= ?3)))) AND EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.rid = r.rid AND c.patient_id IN (?1) AND c.res_type = 'Observation')) ORDER BY r.rid LIMIT 51`}

// buildPatientTokens adds fhir_token_pt and its index to the copy at path
// (schema 13 or later: compartment memberships hold their row key).
func buildPatientTokens(path string) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=cache_size(-32768)&_pragma=threads(2)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'fhir_token_pt'`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	if n > 0 {
		return
	}
	t0 := time.Now()
	if _, err := db.Exec(`CREATE TABLE fhir_token_pt AS SELECT c.patient_id AS patient_id, t.res_type AS res_type, t.param AS param, t.code AS code, t.system AS system, t.rid AS rid
		FROM fhir_compartment c JOIN fhir_token t ON t.rid = c.rid WHERE c.rid <> 0`); err != nil {
		log.Fatal(err)
	}
	t1 := time.Now()
	if _, err := db.Exec(`CREATE INDEX fhir_token_pt_key ON fhir_token_pt (patient_id, res_type, param, code, system, rid)`); err != nil {
		log.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM fhir_token_pt`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("fhir_token_pt: %d rows in %.1f s, its index in %.1f s\n", n, t1.Sub(t0).Seconds(), time.Since(t1).Seconds())
}

type search struct {
	patient, code string
	date          int64
}

func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	path := flag.String("db", "", "the data set's smartgate.db (a copy; schema 12 or later)")
	n := flag.Int("n", 2000, "statements per shape and round")
	rounds := flag.Int("rounds", 2, "rounds")
	par := flag.Int("par", 0, "goroutines running -shape at once (0: every shape, serially)")
	conns := flag.Int("conns", 1, "connections for -par")
	shape := flag.String("shape", "after", "the shape -par runs")
	pt := flag.Bool("patient-tokens", false, "add fhir_token_pt to the copy and the shape that uses it")
	only := flag.String("only", "", "the shapes to run, comma-separated (default: every shape)")
	cacheKiB := flag.Int("cache", 0, "each connection's page cache in KiB (0: SQLite's default, 2000 KiB, as smartgate's readers)")
	flag.Parse()
	if *path == "" {
		log.Fatal("-db is required")
	}
	if *pt {
		buildPatientTokens(*path)
		shapes = append(shapes, patientTokens)
	}
	if *only != "" {
		names := strings.Split(*only, ",")
		shapes = slices.DeleteFunc(shapes, func(s struct{ name, sql string }) bool { return !slices.Contains(names, s.name) })
	}
	dsn := "file:" + *path + "?mode=ro&_pragma=query_only(1)"
	if *cacheKiB > 0 {
		dsn += fmt.Sprintf("&_pragma=cache_size(-%d)", *cacheKiB)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(max(1, *conns))
	db.SetMaxIdleConns(max(1, *conns))
	searches := pick(db)

	nargs := 3
	run := func(st *sql.Stmt, i int) int {
		s := searches[i%len(searches)]
		args := []any{s.patient, s.code, s.date, sqlstore.PatientKey(s.patient)}
		rows, err := st.Query(args[:nargs]...)
		if err != nil {
			log.Fatal(err)
		}
		k := 0
		for rows.Next() {
			k++
		}
		if err := rows.Err(); err != nil {
			log.Fatal(err)
		}
		rows.Close()
		return k
	}
	if *par > 0 {
		i := slices.IndexFunc(shapes, func(s struct{ name, sql string }) bool { return s.name == *shape })
		if i < 0 {
			log.Fatalf("no shape %q", *shape)
		}
		st, err := db.Prepare(shapes[i].sql)
		if err != nil {
			log.Fatal(err)
		}
		nargs = argCount(shapes[i].sql)
		for r := 0; r < *rounds; r++ {
			var next atomic.Int64
			var wg sync.WaitGroup
			c0, t0 := cpu(), time.Now()
			for g := 0; g < *par; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(*n); i = next.Add(1) {
						run(st, int(i))
					}
				}()
			}
			wg.Wait()
			fmt.Printf("%s par=%d conns=%d: %.1f µs of CPU a search, %.0f searches/s\n", *shape, *par, *conns,
				float64(cpu()-c0)/float64(*n)/1e3, float64(*n)/time.Since(t0).Seconds())
		}
		return
	}
	for r := 0; r < *rounds; r++ {
		for _, sh := range shapes {
			st, err := db.Prepare(sh.sql)
			if err != nil {
				log.Fatalf("%s: %v", sh.name, err)
			}
			nargs = argCount(sh.sql)
			rows := 0
			c0 := cpu()
			for i := 0; i < *n; i++ {
				rows += run(st, i)
			}
			fmt.Printf("round %d %-17s %7.1f µs of CPU a search, %.2f rows\n", r+1, sh.name, float64(cpu()-c0)/float64(*n)/1e3, float64(rows)/float64(*n))
			st.Close()
		}
	}
}

// argCount is the parameters a shape binds: ?1 to ?3, and ?4 at schema 15.
func argCount(sql string) int {
	if strings.Contains(sql, "?4") {
		return 4
	}
	return 3
}

// pick chooses 200 searches: a patient at random, one of its
// Observations with a LOINC code and a date, and a date up to a year
// before that one.
func pick(db *sql.DB) []search {
	var patients []string
	rows, err := db.Query(`SELECT res_id FROM fhir_resources WHERE res_type = 'Patient' AND deleted = 0 ORDER BY rid`)
	if err != nil {
		log.Fatal(err)
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			log.Fatal(err)
		}
		patients = append(patients, p)
	}
	rows.Close()
	if len(patients) == 0 {
		log.Fatal("the database holds no Patient")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var out []search
	for tries := 0; len(out) < 200 && tries < 10000; tries++ {
		p := patients[r.IntN(len(patients))]
		var s search
		err := db.QueryRow(`SELECT t.code, d.low FROM fhir_ref f JOIN fhir_token t ON t.rid = f.rid AND t.param = 'code' AND t.system = 'http://loinc.org' JOIN fhir_date d ON d.rid = f.rid AND d.param = 'date' WHERE f.res_type = 'Observation' AND f.param = 'patient' AND f.target_id = ? ORDER BY t.rid, t.code LIMIT 1 OFFSET ?`, p, r.IntN(20)).Scan(&s.code, &s.date)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		s.patient, s.date = p, s.date-int64(r.IntN(365))*86400e6
		out = append(out, s)
	}
	if len(out) == 0 {
		log.Fatal("no patient has an Observation with a LOINC code and a date")
	}
	return out
}
