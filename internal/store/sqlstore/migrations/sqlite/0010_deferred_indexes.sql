-- smartgate schema 10 (issue 6): the search indexes a bulk load into an
-- empty FHIR store dropped, to build them once at its end (sorting every
-- row once is about twice as fast as inserting each into indexes that grow
-- under it). The row holds the index's own CREATE statement, taken from
-- sqlite_master when it was dropped; it goes when the index is built again,
-- by the load's end or, after a load that was interrupted, by the next
-- `smartgate migrate` or `serve` (`smartgate doctor` reports it meanwhile).
CREATE TABLE fhir_deferred_indexes (
    name TEXT PRIMARY KEY,
    sql  TEXT NOT NULL
);
