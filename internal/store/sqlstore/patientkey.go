package sqlstore

import (
	"crypto/md5"
	"database/sql/driver"
	"encoding/binary"
	"fmt"

	"modernc.org/sqlite"
)

// A token row's patient_key (schema 15) names the patient compartment its
// resource is in by its own content, so that fhir_token_code (res_type,
// param, code, patient_key, system, rid) answers "this patient's
// Observations with this code" as one range of the index: before, the
// patient's reference or compartment drove and each of its ~104
// Observations at 1M resources was probed for the code.
//
// The key is not the patient's id but 60 bits of its MD5, so that every
// index entry grows by 9 bytes whatever the ids look like. Two patients
// may share a key: a search by the key keeps its compartment term as a
// filter (pickDriver), so a shared key costs a probe, never a wrong
// match. Two values are reserved:
const (
	// noPatient: the resource is in no patient's compartment by its own
	// content.
	noPatient int64 = 0
	// manyPatients: it is in more than one; a search for any patient
	// reads these rows too.
	manyPatients int64 = 1
)

// patientKey is patient id's key: the first 60 bits of MD5(id), as an
// integer, moved off the reserved 0 and 1. PostgreSQL's migration 15
// computes the same from md5(); SQLite's calls smartgate_patient_key
// (registered below).
func patientKey(id string) int64 {
	sum := md5.Sum([]byte(id))
	k := int64(binary.BigEndian.Uint64(sum[:8]) >> 4)
	if k <= manyPatients {
		k += 2
	}
	return k
}

// PatientKey is patientKey, for bench/cmd/searchsql.
func PatientKey(id string) int64 { return patientKey(id) }

// patientsKey is the key of a resource whose own content puts it in the
// compartments of patients (deduplicated).
func patientsKey(patients []string) int64 {
	switch len(patients) {
	case 0:
		return noPatient
	case 1:
		return patientKey(patients[0])
	}
	return manyPatients
}

// patientKeys is the keys a search for the compartments of patients
// reads: each one's, manyPatients, and noPatient. The last is for rows
// written without a key: a smartgate older than schema 15, still running
// on a PostgreSQL database that a newer node migrated, writes its token
// rows with the column's default, 0. Reading them costs one more range of
// the index (few rows of a compartment's type are in no compartment), and
// the search's compartment or reference filter decides, as for the rows
// of many patients.
func patientKeys(patients []string) []any {
	out := make([]any, 0, len(patients)+2)
	for _, p := range patients {
		out = append(out, patientKey(p))
	}
	return append(out, manyPatients, noPatient)
}

func init() {
	// For SQLite's migration 15, which fills the key of the token rows
	// written before it.
	sqlite.MustRegisterDeterministicScalarFunction("smartgate_patient_key", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return patientKey(v), nil
		case []byte:
			return patientKey(string(v)), nil
		}
		return nil, fmt.Errorf("smartgate_patient_key: want a patient id, got %T", args[0])
	})
}
