-- smartgate schema 1: signing keys, change sequence, audit events.
-- Times are Unix microseconds (BIGINT) in both dialects.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    private_enc BYTEA NOT NULL,
    kek_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    active_at   BIGINT NOT NULL
);

-- One row; incrementing it serialises writers (row lock until commit) so
-- that sequence numbers are assigned in commit order.
CREATE TABLE change_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_counter (id, seq) VALUES (1, 0);

CREATE TABLE changes (
    seq   BIGINT PRIMARY KEY,
    topic TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    BIGINT NOT NULL
);
CREATE INDEX changes_at ON changes (at);

CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    actor      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    patient    TEXT NOT NULL,
    action     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor ON audit_events (actor, at);
CREATE INDEX audit_events_client ON audit_events (client_id, at);
CREATE INDEX audit_events_patient ON audit_events (patient, at);
