-- smartgate schema 7 (issue 6): Bulk Data $export jobs and their NDJSON
-- output, kept in the database so that every node serves every job's
-- status and files. A file's content is stored in chunks (about 1 MiB
-- each), so neither writing nor serving holds a whole file in memory.
-- Times are unix microseconds; 0 means "never".
CREATE TABLE export_jobs (
    id               TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL,
    status           TEXT NOT NULL,
    request          TEXT NOT NULL,
    params           TEXT NOT NULL,
    transaction_time INTEGER NOT NULL,
    progress         TEXT NOT NULL,
    error            TEXT NOT NULL,
    owner            TEXT NOT NULL,
    lease_until      INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX export_jobs_status ON export_jobs (status, created_at);
CREATE INDEX export_jobs_expires ON export_jobs (expires_at);

CREATE TABLE export_files (
    job_id TEXT NOT NULL REFERENCES export_jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    type   TEXT NOT NULL,
    count  INTEGER NOT NULL,
    bytes  INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE export_chunks (
    job_id TEXT NOT NULL REFERENCES export_jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (job_id, seq, n)
);
