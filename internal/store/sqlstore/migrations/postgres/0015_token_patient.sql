-- smartgate schema 15 (issue 6): a token row holds the patient whose
-- compartment its resource is in by its own content, and fhir_token_code
-- holds it after the code (sqlite/0015_token_patient.sql says why).
-- patient_key is the first 60 bits of MD5 of the patient's id, moved off
-- 0 (no patient) and 1 (more than one), as smartgate's patientKey
-- computes it.
ALTER TABLE fhir_token ADD COLUMN patient_key BIGINT NOT NULL DEFAULT 0;
UPDATE fhir_token t SET patient_key = k.k
    FROM (SELECT rid, CASE WHEN n > 1 THEN 1 WHEN v <= 1 THEN v + 2 ELSE v END AS k
          FROM (SELECT rid, count(DISTINCT patient_id) AS n,
                       ('x' || substr(md5(min(patient_id)), 1, 15))::bit(60)::bigint AS v
                FROM fhir_compartment WHERE via = '' AND rid <> 0 GROUP BY rid) g) k
    WHERE t.rid = k.rid;
DELETE FROM fhir_deferred_indexes WHERE name = 'fhir_token_code';
DROP INDEX IF EXISTS fhir_token_code;
CREATE INDEX fhir_token_code ON fhir_token (res_type, param, code, patient_key, system, rid);
