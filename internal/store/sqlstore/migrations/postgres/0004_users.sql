-- smartgate schema 4: local users, their links to upstream identity
-- providers, login sessions and login throttling state. Times are unix
-- microseconds; 0 means "never".
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL,
    username_key    TEXT NOT NULL UNIQUE, -- lower-cased username: unique case-insensitively
    role            TEXT NOT NULL,
    fhir_user       TEXT NOT NULL,
    status          TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    totp_secret_enc BYTEA,
    totp_kek_id     TEXT NOT NULL,
    totp_enabled    BOOLEAN NOT NULL,
    totp_last_step  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_login_at   BIGINT NOT NULL
);

CREATE TABLE user_links (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_links_user ON user_links (user_id);

CREATE TABLE login_sessions (
    id_hash    BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    amr        TEXT NOT NULL, -- space-separated RFC 8176 values
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);
CREATE INDEX login_sessions_expires ON login_sessions (expires_at);

CREATE TABLE login_throttles (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    next_allowed BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
