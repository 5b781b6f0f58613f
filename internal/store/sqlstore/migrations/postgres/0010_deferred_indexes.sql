-- smartgate schema 10 (issue 6): the search indexes a bulk load deferred.
-- Only SQLite's bulk loads defer indexes today (see the SQLite migration);
-- the table keeps both dialects at the same schema.
CREATE TABLE fhir_deferred_indexes (
    name TEXT PRIMARY KEY,
    sql  TEXT NOT NULL
);
