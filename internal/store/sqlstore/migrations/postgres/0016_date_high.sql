-- smartgate schema 16: fhir_date by the end of each range too. A date
-- "from X on" (ge, gt), "ends before X" (eb) and the upper half of ne ask
-- for high, which fhir_date_low cannot answer: at 1M resources
-- Observation?date=ge2025-11-01 read every Observation's date row (0.39-0.60 s
-- on SQLite, with no match). Built in 3.5 s on the SQLite 1M set.
CREATE INDEX fhir_date_high ON fhir_date (res_type, param, high);
