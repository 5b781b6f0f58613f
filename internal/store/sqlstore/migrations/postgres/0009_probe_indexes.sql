-- smartgate schema 9 (issue 6): the row key at the end of the indexes of
-- token codes and reference targets, so that a search's filter "this
-- candidate has code C" (or "refers to T") is one lookup of the index
-- (res_type, param, code, system, rid) instead of a walk of every token row
-- of the candidate and a read of each (about 8 for an Observation). A
-- patient's Observations of one code from a date read about 1,000 rows for
-- 130 candidates at 100k resources; now 130 index lookups. The indexes are
-- rebuilt: on a database of a million resources that takes about a minute.
DROP INDEX fhir_token_code;
CREATE INDEX fhir_token_code ON fhir_token (res_type, param, code, system, rid);
DROP INDEX fhir_ref_target;
CREATE INDEX fhir_ref_target ON fhir_ref (res_type, param, target_id, target_type, rid);
