package importer

import (
	"errors"
	"strconv"

	"smartgate/internal/fhir"
	"smartgate/internal/problem"
)

// Counts are what an import did, entry by entry.
type Counts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"` // same content as stored: no new version
	Deleted   int `json:"deleted"`
	Failed    int `json:"failed"`
	// NewIDs counts the created resources that had no id: importing them
	// again creates them again.
	NewIDs int `json:"new_ids"`
}

// Total is the number of entries counted.
func (c Counts) Total() int { return c.Created + c.Updated + c.Unchanged + c.Deleted + c.Failed }

func (c *Counts) add(o Counts) {
	c.Created += o.Created
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deleted += o.Deleted
	c.Failed += o.Failed
	c.NewIDs += o.NewIDs
}

func (c *Counts) count(r fhir.ImportResult) {
	if r.NewID {
		c.NewIDs++
	}
	switch r.Outcome {
	case fhir.ImportCreated:
		c.Created++
	case fhir.ImportUpdated:
		c.Updated++
	case fhir.ImportUnchanged:
		c.Unchanged++
	case fhir.ImportDeleted:
		c.Deleted++
	}
}

// Failure is one entry that was not imported, and why.
type Failure struct {
	File string `json:"file"`
	// Line is the NDJSON line number (from 1); Entry the Bundle entry
	// index (from 0, as in Bundle.entry[i]). Neither for a file that
	// holds one resource.
	Line  int  `json:"line,omitempty"`
	Entry *int `json:"entry,omitempty"`
	// Resource is Type/id when the entry named one.
	Resource string `json:"resource,omitempty"`
	// Reason is the API's description of the problem (for a resource that
	// is not valid FHIR, the first validation issue), Issues every
	// validation issue with its FHIRPath location.
	Reason string  `json:"reason"`
	Issues []Issue `json:"issues,omitempty"`
}

// Issue is one validation problem of a failed resource.
type Issue struct {
	Expression  string `json:"expression,omitempty"`
	Diagnostics string `json:"diagnostics"`
}

// Where says where the failure is, for people: "line 12", "entry 3".
func (f Failure) Where() string {
	switch {
	case f.Line > 0:
		return "line " + strconv.Itoa(f.Line)
	case f.Entry != nil:
		return "entry " + strconv.Itoa(*f.Entry)
	}
	return "the resource"
}

// FileSummary is what importing one file did.
type FileSummary struct {
	File string `json:"file"`
	// Format is ndjson, resource, or bundle/<type> (transaction, batch,
	// collection, searchset).
	Format string `json:"format"`
	Counts
	// Failures lists the first failures (Options.MaxFailures);
	// FailuresOmitted counts the rest (Options.FailureLog has them all).
	Failures        []Failure `json:"failures,omitempty"`
	FailuresOmitted int       `json:"failures_omitted,omitempty"`
	// Error, when set, says why the file could not be read to its end:
	// what came before it was imported, nothing after it.
	Error string `json:"error,omitempty"`
}

// Summary is what a whole import did.
type Summary struct {
	Files []FileSummary `json:"files"`
	Counts
	Seconds float64 `json:"seconds"`
	// PerSecond is the entries counted per second of the whole import.
	PerSecond float64 `json:"per_second"`
	// IndexSeconds is the part of Seconds spent building the search
	// indexes at the end (an import into an empty SQLite store), and
	// IndexError why that failed.
	IndexSeconds float64 `json:"index_seconds,omitempty"`
	IndexError   string  `json:"index_error,omitempty"`
}

// OK reports whether every entry of every file was imported.
func (s Summary) OK() bool {
	if s.Failed > 0 || s.IndexError != "" {
		return false
	}
	for _, f := range s.Files {
		if f.Error != "" {
			return false
		}
	}
	return true
}

// failureOf describes err, an entry's error, for the summary. The CLI's
// reader is the operator, so an internal error shows its cause.
func failureOf(file string, err error) Failure {
	f := Failure{File: file}
	var pe *problem.Error
	if !errors.As(err, &pe) {
		f.Reason = err.Error()
		return f
	}
	f.Reason = pe.Description
	if pe.ID == problem.InternalError && pe.Cause != nil {
		f.Reason = "internal error: " + pe.Cause.Error()
	}
	for _, is := range pe.Issues {
		f.Issues = append(f.Issues, Issue{Expression: is.Expression, Diagnostics: is.Diagnostics})
	}
	return f
}
