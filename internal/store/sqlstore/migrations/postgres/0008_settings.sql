-- smartgate schema 8 (issue 8): runtime settings an administrator changes
-- from the console, the admin API or the CLI (docs/configuration.md,
-- "Runtime settings"), and an index for the audit log's filter by action.
-- Times are unix microseconds.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE INDEX audit_events_action ON audit_events (action, at);
