package store

import (
	"context"
	"encoding/json"
	"time"
)

// Export job states (FHIR Bulk Data Access 2.0 §Bulk Data Status Request).
const (
	ExportAccepted  = "accepted"  // waiting for a node to run it
	ExportRunning   = "running"   // a node holds its lease and writes files
	ExportCompleted = "completed" // every file is written; the manifest is served
	ExportFailed    = "failed"    // stopped with Error; the status answers it
)

// ExportJob is one Bulk Data export. The client that started it owns it:
// its status and files are served to that client only.
type ExportJob struct {
	ID       string
	ClientID string
	Status   string
	// Request is the kick-off request URL (the manifest's "request").
	Request string
	// Params is the export's parsed parameters as JSON (kind, types,
	// _since, _typeFilter, patients), owned by package fhir.
	Params json.RawMessage
	// TransactionTime is the time the export reflects (the manifest's
	// "transactionTime"): set when the job is accepted.
	TransactionTime time.Time
	Progress        string // the X-Progress of a running job
	Error           string // why it failed, for the client
	// Owner is the node running it and LeaseUntil how long it may: a job
	// whose lease ran out is claimed again by another node (and starts
	// over).
	Owner      string
	LeaseUntil time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ExpiresAt  time.Time // the job and its files are deleted after this
}

// ExportFile is one NDJSON output file of a job.
type ExportFile struct {
	JobID string
	Seq   int    // 1, 2, ... in the job
	Type  string // the FHIR resource type of every line
	Count int64  // resources in the file
	Bytes int64
}

// Exports stores Bulk Data export jobs and their output files, so that
// any node can serve the status and the files of any job. File contents
// are written as chunks so that neither writing nor reading holds a whole
// file in memory.
type Exports interface {
	CreateExportJob(ctx context.Context, j ExportJob) error
	// GetExportJob returns a job; ErrNotFound when unknown or deleted.
	GetExportJob(ctx context.Context, id string) (ExportJob, error)
	// ClaimExportJob gives owner the oldest accepted job, or a running job
	// whose lease ended before now (its files are deleted: it starts
	// over), with the lease until leaseUntil; ErrNotFound when there is
	// none. Of two nodes claiming at once, each gets a different job.
	ClaimExportJob(ctx context.Context, owner string, now, leaseUntil time.Time) (ExportJob, error)
	// UpdateExportJob runs fn on the job owned by owner and stores the
	// result (progress, lease, status, error). ErrNotFound when the job is
	// gone (deleted by its client) or another node owns it now: the
	// caller stops working on it.
	UpdateExportJob(ctx context.Context, id, owner string, fn func(j *ExportJob)) error
	// PutExportChunk stores chunk n (0, 1, ...) of file seq of a job owned
	// by owner; ErrNotFound as for UpdateExportJob.
	PutExportChunk(ctx context.Context, jobID, owner string, seq, n int, data []byte) error
	// AddExportFile records a finished file of a job owned by owner.
	AddExportFile(ctx context.Context, owner string, f ExportFile) error
	// ListExportFiles returns a job's files by Seq.
	ListExportFiles(ctx context.Context, jobID string) ([]ExportFile, error)
	// ReadExportFile calls fn with the file's bytes in order, a piece of
	// at most about 1 MiB at a time (the chunks as written, or other
	// pieces of the same bytes; a piece is valid only during the call);
	// ErrNotFound when the job has no such file.
	ReadExportFile(ctx context.Context, jobID string, seq int, fn func(chunk []byte) error) error
	// CountActiveExports counts a client's accepted and running jobs.
	CountActiveExports(ctx context.Context, clientID string) (int, error)
	// DeleteExportJob deletes a job and its files; ErrNotFound when unknown.
	DeleteExportJob(ctx context.Context, id string) error
	// PruneExports deletes the jobs (and files) that expired before now.
	PruneExports(ctx context.Context, now time.Time) (int, error)
}
