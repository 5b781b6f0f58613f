-- smartgate schema 3: FHIR resources (current and every version), search
-- index rows per parameter type, and patient-compartment membership.
-- Times are unix microseconds. Index rows belong to the current version of
-- a resource (rid); they are kept when it is deleted, so that an access
-- check on a deleted resource answers as it did before the deletion.
CREATE TABLE fhir_resources (
    rid          INTEGER PRIMARY KEY,
    res_type     TEXT NOT NULL,
    res_id       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (res_type, res_id)
);
CREATE INDEX fhir_resources_type ON fhir_resources (res_type, deleted, rid);
CREATE INDEX fhir_resources_updated ON fhir_resources (res_type, last_updated);

CREATE TABLE fhir_history (
    hid          INTEGER PRIMARY KEY,
    rid          INTEGER NOT NULL,
    res_type     TEXT NOT NULL,
    res_id       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    method       TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (rid, version)
);
CREATE INDEX fhir_history_time ON fhir_history (last_updated, hid);
CREATE INDEX fhir_history_type ON fhir_history (res_type, last_updated, hid);

CREATE TABLE fhir_token (
    rid      INTEGER NOT NULL,
    res_type TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT NOT NULL,
    code     TEXT NOT NULL,
    text     TEXT NOT NULL
);
CREATE INDEX fhir_token_code ON fhir_token (res_type, param, code, system);
CREATE INDEX fhir_token_text ON fhir_token (res_type, param, text);
CREATE INDEX fhir_token_rid ON fhir_token (rid);

CREATE TABLE fhir_string (
    rid      INTEGER NOT NULL,
    res_type TEXT NOT NULL,
    param    TEXT NOT NULL,
    norm     TEXT NOT NULL,
    exact    TEXT NOT NULL
);
CREATE INDEX fhir_string_norm ON fhir_string (res_type, param, norm);
CREATE INDEX fhir_string_rid ON fhir_string (rid);

CREATE TABLE fhir_ref (
    rid          INTEGER NOT NULL,
    res_type     TEXT NOT NULL,
    param        TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    url          TEXT NOT NULL,
    ident_system TEXT NOT NULL,
    ident_value  TEXT NOT NULL
);
CREATE INDEX fhir_ref_target ON fhir_ref (res_type, param, target_id, target_type);
CREATE INDEX fhir_ref_rev ON fhir_ref (target_type, target_id);
CREATE INDEX fhir_ref_rid ON fhir_ref (rid);

CREATE TABLE fhir_date (
    rid      INTEGER NOT NULL,
    res_type TEXT NOT NULL,
    param    TEXT NOT NULL,
    low      INTEGER NOT NULL,
    high     INTEGER NOT NULL
);
CREATE INDEX fhir_date_low ON fhir_date (res_type, param, low);
CREATE INDEX fhir_date_rid ON fhir_date (rid);

CREATE TABLE fhir_quantity (
    rid      INTEGER NOT NULL,
    res_type TEXT NOT NULL,
    param    TEXT NOT NULL,
    value    REAL NOT NULL,
    system   TEXT NOT NULL,
    code     TEXT NOT NULL,
    unit     TEXT NOT NULL
);
CREATE INDEX fhir_quantity_value ON fhir_quantity (res_type, param, value);
CREATE INDEX fhir_quantity_rid ON fhir_quantity (rid);

CREATE TABLE fhir_number (
    rid      INTEGER NOT NULL,
    res_type TEXT NOT NULL,
    param    TEXT NOT NULL,
    value    REAL NOT NULL
);
CREATE INDEX fhir_number_value ON fhir_number (res_type, param, value);
CREATE INDEX fhir_number_rid ON fhir_number (rid);

CREATE TABLE fhir_uri (
    rid      INTEGER NOT NULL,
    res_type TEXT NOT NULL,
    param    TEXT NOT NULL,
    value    TEXT NOT NULL
);
CREATE INDEX fhir_uri_value ON fhir_uri (res_type, param, value);
CREATE INDEX fhir_uri_rid ON fhir_uri (rid);

-- Membership of res_type/res_id in patient_id's compartment. via is empty
-- for memberships a resource has by its own content, or "Type/id" of the
-- resource that gave it (a DocumentReference placing a Binary).
CREATE TABLE fhir_compartment (
    res_type   TEXT NOT NULL,
    res_id     TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    via        TEXT NOT NULL
);
CREATE INDEX fhir_compartment_patient ON fhir_compartment (patient_id, res_type, res_id);
CREATE INDEX fhir_compartment_res ON fhir_compartment (res_type, res_id);
CREATE INDEX fhir_compartment_via ON fhir_compartment (via);
