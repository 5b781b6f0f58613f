-- smartgate schema 14: on SQLite the audit trail moves to a file of its own
-- (see sqlite/0014_audit_file.sql). PostgreSQL keeps it in audit_events:
-- its readers share one buffer cache that a write does not invalidate.
-- Nothing changes here; the version keeps the two dialects' numbers equal.
SELECT 1;
