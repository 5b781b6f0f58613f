-- smartgate schema 5: the authorization endpoint's short-lived state:
-- authorization codes, pushed authorization requests (RFC 9126) and EHR
-- launch contexts, each stored under the SHA-256 of its random value.
-- Times are unix microseconds; 0 means "never".
CREATE TABLE auth_codes (
    hash           BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    scope          TEXT NOT NULL,
    subject        TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    context        TEXT NOT NULL,
    grant_id       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER NOT NULL
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE pushed_requests (
    hash       BLOB PRIMARY KEY,
    client_id  TEXT NOT NULL,
    params     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX pushed_requests_expires ON pushed_requests (expires_at);

CREATE TABLE launches (
    hash       BLOB PRIMARY KEY,
    client_id  TEXT NOT NULL,
    context    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX launches_expires ON launches (expires_at);
