-- smartgate schema 11 (issue 6): two search indexes that cost every write
-- more than they gave.
--
-- fhir_token_text (res_type, param, text) served only :text searches,
-- whose LIKE patterns SQLite cannot answer from it (a LIKE is
-- case-insensitive; the column's collation is BINARY): at best it let
-- SQLite read the text of a type's tokens from the index instead of the
-- rows. It took 7 of the 75 B-tree inserts of a resource, and 11-15 s of
-- the 60 s index build after a load of a million resources. A :text
-- search now reads the rows through fhir_token_code's (res_type, param)
-- prefix, or, with a patient or another filter, probes by row key as
-- before.
--
-- fhir_compartment_via indexed every membership by the resource that gave
-- it, while only a DocumentReference placing a Binary gives one (0.6% of
-- the rows of a synthetic set); the others all held ''. It now holds only
-- those rows, and the one query by via says so (via <> '').
--
-- A bulk load that deferred either (0010) gets the new definitions.
DELETE FROM fhir_deferred_indexes WHERE name IN ('fhir_token_text', 'fhir_compartment_via');
DROP INDEX IF EXISTS fhir_token_text;
DROP INDEX IF EXISTS fhir_compartment_via;
CREATE INDEX fhir_compartment_via ON fhir_compartment (via) WHERE via <> '';
