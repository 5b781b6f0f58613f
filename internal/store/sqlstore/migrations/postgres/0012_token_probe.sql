-- smartgate schema 12 (issue 6): fhir_token_rid holds the parameter, code
-- and system after the row key (see the SQLite migration), so that a
-- filter on a candidate's code can be an index-only lookup here too.
DROP INDEX fhir_token_rid;
CREATE INDEX fhir_token_rid ON fhir_token (rid, param, code, system);
