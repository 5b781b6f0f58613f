-- smartgate schema 15 (issue 6): a token row holds the patient whose
-- compartment its resource is in by its own content (patient_key: 60 bits
-- of MD5 of the patient's id; 0 for none, 1 for more than one), and
-- fhir_token_code holds it after the code: (res_type, param, code,
-- patient_key, system, rid). So "this patient's Observations with this
-- code", under a patient scope, is one range of that index, instead of a
-- probe for the code of each of the patient's ~104 Observations at 1M
-- resources (patientkey.go).
--
-- The keys of the rows written before are filled from the compartment
-- memberships of schema 13 (smartgate_patient_key is smartgate's Go
-- function, registered with the driver), and the index is rebuilt: about a
-- minute on a database of a million resources.
ALTER TABLE fhir_token ADD COLUMN patient_key INTEGER NOT NULL DEFAULT 0;
CREATE TEMP TABLE patient_keys (rid INTEGER PRIMARY KEY, k INTEGER NOT NULL);
INSERT INTO patient_keys (rid, k)
    SELECT rid, CASE count(DISTINCT patient_id) WHEN 1 THEN smartgate_patient_key(min(patient_id)) ELSE 1 END
    FROM fhir_compartment WHERE via = '' AND rid <> 0 GROUP BY rid;
UPDATE fhir_token SET patient_key = patient_keys.k FROM patient_keys WHERE patient_keys.rid = fhir_token.rid;
DROP TABLE patient_keys;
-- A bulk load that deferred the index (0010) gets the new definition.
DELETE FROM fhir_deferred_indexes WHERE name = 'fhir_token_code';
DROP INDEX IF EXISTS fhir_token_code;
CREATE INDEX fhir_token_code ON fhir_token (res_type, param, code, patient_key, system, rid);
