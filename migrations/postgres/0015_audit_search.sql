-- Substring searches of the audit page (actor, target, free text) through a
-- trigram index (pg_trgm), so that a rare name is found among a million
-- events in milliseconds instead of by reading every event of the range.
-- The index is on exactly the expression of the store's free-text search:
-- the searched fields joined by a unit separator (U+001F), which no search
-- contains. An actor or target search also matches that expression (they
-- are among its fields), so one index serves all three: each index is paid
-- for on every append, under the write lock.
--
-- pg_trgm ships with PostgreSQL and is a trusted extension: the database's
-- owner (or a user with CREATE on it) may install it. Where it cannot be
-- installed the searches still work, by reading the range as before; the
-- notice says why, and installing it later (CREATE EXTENSION pg_trgm, then
-- the index below) makes them fast.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'writeback: pg_trgm is not available (%): audit searches by name and text read the whole time range', SQLERRM;
END
$$;

DO $$
DECLARE
    ops text;
BEGIN
    SELECT quote_ident(n.nspname) || '.gin_trgm_ops' INTO ops
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF ops IS NULL THEN
        RETURN;
    END IF;
    EXECUTE 'CREATE INDEX audit_text_trgm ON audit_events USING gin ((activity || E''\x1f'' || actor_id || E''\x1f'' || actor_name'
        || ' || E''\x1f'' || target_id || E''\x1f'' || target_dn || E''\x1f'' || target_name || E''\x1f'' || reason'
        || ' || E''\x1f'' || client_ip || E''\x1f'' || correlation_id || E''\x1f'' || details) ' || ops || ')';
END
$$;
