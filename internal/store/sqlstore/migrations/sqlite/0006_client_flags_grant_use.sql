-- smartgate schema 6 (issue 5): a client's PKCE exemption and PAR
-- requirement (RFC 9126 §5), when a grant was last used, and grants looked
-- up by login session (RP-initiated logout ends a session's online_access
-- grants). The client's post_logout_redirect_uris and initiate_login_uri
-- live in clients.metadata (JSON) and need no column.
-- Times are unix microseconds.
ALTER TABLE clients ADD COLUMN pkce_exempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN require_par INTEGER NOT NULL DEFAULT 0;

ALTER TABLE grants ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
UPDATE grants SET last_used_at = created_at;
CREATE INDEX grants_session ON grants (session_id);
