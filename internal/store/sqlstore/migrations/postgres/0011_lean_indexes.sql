-- smartgate schema 11 (issue 6) changes two SQLite indexes (see the
-- SQLite migration); PostgreSQL keeps its own. This keeps both dialects at
-- the same schema version.
SELECT 1;
