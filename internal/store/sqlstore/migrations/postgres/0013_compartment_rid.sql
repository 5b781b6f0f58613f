-- smartgate schema 13 (issue 6): a compartment membership holds the row
-- key of its resource (see the SQLite migration): 0 for one that a
-- DocumentReference gives the Binary it places (via <> '').
ALTER TABLE fhir_compartment ADD COLUMN rid BIGINT NOT NULL DEFAULT 0;
UPDATE fhir_compartment c SET rid = r.rid FROM fhir_resources r
    WHERE r.res_type = c.res_type AND r.res_id = c.res_id AND c.via = '';
DROP INDEX IF EXISTS fhir_compartment_patient;
CREATE INDEX fhir_compartment_patient ON fhir_compartment (patient_id, res_type, rid);
