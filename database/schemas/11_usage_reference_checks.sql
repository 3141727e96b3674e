-- =============================================================================
-- 11_usage_reference_checks.sql — usage_records' references checked once per
-- statement instead of once per row.
--
-- usage_records takes a row per served request, in COPY batches of up to a
-- thousand. Its six foreign keys (tenant, environment, key, region, model,
-- node) were each checked per row — one lookup and one row lock per
-- reference, each a query of its own: two thirds of PostgreSQL's CPU per
-- usage row (measured: 100,000 rows by COPY, ~30 µs per row with the
-- foreign keys, ~10 µs without). Here the same guarantees come from
-- triggers that work per statement:
--
--   * an INSERT locks every distinct referenced row (FOR KEY SHARE, as a
--     foreign key check does, so a concurrent DELETE of it waits for the
--     insert's transaction) and fails with SQLSTATE 23503 and the former
--     constraint's name when one is missing — the error a foreign key gives,
--     which the gateway's writer answers by re-inserting the batch with the
--     vanished references as NULL;
--   * an UPDATE that points a row at another tenant, environment, key,
--     region, model or node is checked the same way (per row: rare);
--   * deleting a tenant deletes its usage rows (was ON DELETE CASCADE);
--     deleting an environment, key, region, model or node sets the
--     reference to NULL (was ON DELETE SET NULL); changing a referenced id
--     is refused (was the foreign keys' NO ACTION); emptying a referenced
--     table with TRUNCATE is refused while usage rows point into it (truncate
--     usage_records in the same statement, as a foreign key required).
--
-- Deletes of the referenced rows are expected in READ COMMITTED, the
-- platform's isolation level everywhere: the cascade and set-null triggers
-- see rows committed while the delete waited for an insert's lock. (Under
-- REPEATABLE READ a foreign key would fail with a serialization error
-- instead; nothing here deletes those rows at that level.)
--
-- Idempotent (DROP … IF EXISTS, CREATE OR REPLACE). No BEGIN/COMMIT, no
-- psql meta-commands. Requires 01_core_tables.sql.
-- Reverse: database/rollback/11_usage_reference_checks.down.sql
-- =============================================================================

SET client_min_messages = warning;

ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_tenant_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_environment_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_api_key_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_region_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_model_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_node_id_fkey;

-- Locks the rows of `parent` with these ids (FOR KEY SHARE) and raises
-- foreign_key_violation, naming `col`'s former constraint, unless all exist.
CREATE OR REPLACE FUNCTION usage_reference_lock(parent regclass, col text, ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    found bigint;
    missing uuid;
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s WHERE id = ANY($1) FOR KEY SHARE) locked', parent)
        INTO found USING ids;
    IF found < cardinality(ids) THEN
        EXECUTE format('SELECT x FROM unnest($1) x WHERE NOT EXISTS (SELECT 1 FROM %s p WHERE p.id = x) LIMIT 1', parent)
            INTO missing USING ids;
        RAISE EXCEPTION 'insert or update on table "usage_records" violates foreign key constraint "usage_records_%_fkey"', col
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = format('usage_records_%s_fkey', col),
                  TABLE = 'usage_records',
                  COLUMN = col,
                  DETAIL = format('Key (%s)=(%s) is not present in table "%s".', col, missing, parent);
    END IF;
END;
$$;

-- AFTER INSERT, per statement: every distinct reference of the new rows.
CREATE OR REPLACE FUNCTION usage_records_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t uuid[]; e uuid[]; k uuid[]; r uuid[]; m uuid[]; n uuid[];
BEGIN
    SELECT array_agg(DISTINCT tenant_id),
           array_agg(DISTINCT environment_id) FILTER (WHERE environment_id IS NOT NULL),
           array_agg(DISTINCT api_key_id) FILTER (WHERE api_key_id IS NOT NULL),
           array_agg(DISTINCT region_id) FILTER (WHERE region_id IS NOT NULL),
           array_agg(DISTINCT model_id) FILTER (WHERE model_id IS NOT NULL),
           array_agg(DISTINCT node_id) FILTER (WHERE node_id IS NOT NULL)
      INTO t, e, k, r, m, n
      FROM new_rows;
    PERFORM usage_reference_lock('tenants', 'tenant_id', t);
    PERFORM usage_reference_lock('environments', 'environment_id', e);
    PERFORM usage_reference_lock('api_keys', 'api_key_id', k);
    PERFORM usage_reference_lock('regions', 'region_id', r);
    PERFORM usage_reference_lock('models', 'model_id', m);
    PERFORM usage_reference_lock('nodes', 'node_id', n);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER usage_records_check_references
    AFTER INSERT ON usage_records REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_check_references();

-- AFTER UPDATE, per row, only when a reference changes to another row.
CREATE OR REPLACE FUNCTION usage_records_check_changed_references() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
        PERFORM usage_reference_lock('tenants', 'tenant_id', ARRAY[NEW.tenant_id]);
    END IF;
    IF NEW.environment_id IS DISTINCT FROM OLD.environment_id AND NEW.environment_id IS NOT NULL THEN
        PERFORM usage_reference_lock('environments', 'environment_id', ARRAY[NEW.environment_id]);
    END IF;
    IF NEW.api_key_id IS DISTINCT FROM OLD.api_key_id AND NEW.api_key_id IS NOT NULL THEN
        PERFORM usage_reference_lock('api_keys', 'api_key_id', ARRAY[NEW.api_key_id]);
    END IF;
    IF NEW.region_id IS DISTINCT FROM OLD.region_id AND NEW.region_id IS NOT NULL THEN
        PERFORM usage_reference_lock('regions', 'region_id', ARRAY[NEW.region_id]);
    END IF;
    IF NEW.model_id IS DISTINCT FROM OLD.model_id AND NEW.model_id IS NOT NULL THEN
        PERFORM usage_reference_lock('models', 'model_id', ARRAY[NEW.model_id]);
    END IF;
    IF NEW.node_id IS DISTINCT FROM OLD.node_id AND NEW.node_id IS NOT NULL THEN
        PERFORM usage_reference_lock('nodes', 'node_id', ARRAY[NEW.node_id]);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER usage_records_check_changed_references
    AFTER UPDATE OF tenant_id, environment_id, api_key_id, region_id, model_id, node_id ON usage_records
    FOR EACH ROW
    WHEN (NEW.tenant_id IS DISTINCT FROM OLD.tenant_id
          OR (NEW.environment_id IS DISTINCT FROM OLD.environment_id AND NEW.environment_id IS NOT NULL)
          OR (NEW.api_key_id IS DISTINCT FROM OLD.api_key_id AND NEW.api_key_id IS NOT NULL)
          OR (NEW.region_id IS DISTINCT FROM OLD.region_id AND NEW.region_id IS NOT NULL)
          OR (NEW.model_id IS DISTINCT FROM OLD.model_id AND NEW.model_id IS NOT NULL)
          OR (NEW.node_id IS DISTINCT FROM OLD.node_id AND NEW.node_id IS NOT NULL))
    EXECUTE FUNCTION usage_records_check_changed_references();

-- AFTER DELETE on a referenced table, per statement (TG_ARGV: the column of
-- usage_records, then 'cascade' or 'set null').
CREATE OR REPLACE FUNCTION usage_records_parent_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_ARGV[1] = 'cascade' THEN
        EXECUTE format('DELETE FROM usage_records WHERE %I IN (SELECT id FROM gone)', TG_ARGV[0]);
    ELSE
        EXECUTE format('UPDATE usage_records SET %1$I = NULL WHERE %1$I IN (SELECT id FROM gone)', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END;
$$;

-- BEFORE UPDATE OF id on a referenced table: refused while usage rows
-- point at the old id (TG_ARGV: the column of usage_records).
CREATE OR REPLACE FUNCTION usage_records_parent_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    used boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM usage_records WHERE %I = $1)', TG_ARGV[0]) INTO used USING OLD.id;
    IF used THEN
        RAISE EXCEPTION 'update on table "%" violates foreign key constraint "usage_records_%_fkey" on table "usage_records"',
                TG_TABLE_NAME, TG_ARGV[0]
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = format('usage_records_%s_fkey', TG_ARGV[0]),
                  DETAIL = format('Key (id)=(%s) is still referenced from table "usage_records".', OLD.id);
    END IF;
    RETURN NEW;
END;
$$;

-- AFTER TRUNCATE on a referenced table, per statement (TG_ARGV: the column
-- of usage_records): refused while usage rows still point into it (after
-- the statement emptied every table it names, usage_records included).
CREATE OR REPLACE FUNCTION usage_records_parent_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    used boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM usage_records WHERE %I IS NOT NULL)', TG_ARGV[0]) INTO used;
    IF used THEN
        RAISE EXCEPTION 'cannot truncate a table referenced in a foreign key constraint'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('usage_records.%s references "%s".', TG_ARGV[0], TG_TABLE_NAME),
                  HINT = 'Truncate table "usage_records" at the same time.';
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER usage_records_tenant_deleted
    AFTER DELETE ON tenants REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_deleted('tenant_id', 'cascade');
CREATE OR REPLACE TRIGGER usage_records_environment_deleted
    AFTER DELETE ON environments REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_deleted('environment_id', 'set null');
CREATE OR REPLACE TRIGGER usage_records_api_key_deleted
    AFTER DELETE ON api_keys REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_deleted('api_key_id', 'set null');
CREATE OR REPLACE TRIGGER usage_records_region_deleted
    AFTER DELETE ON regions REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_deleted('region_id', 'set null');
CREATE OR REPLACE TRIGGER usage_records_model_deleted
    AFTER DELETE ON models REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_deleted('model_id', 'set null');
CREATE OR REPLACE TRIGGER usage_records_node_deleted
    AFTER DELETE ON nodes REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_deleted('node_id', 'set null');

CREATE OR REPLACE TRIGGER usage_records_tenant_key_changed
    BEFORE UPDATE OF id ON tenants FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION usage_records_parent_key_changed('tenant_id');
CREATE OR REPLACE TRIGGER usage_records_environment_key_changed
    BEFORE UPDATE OF id ON environments FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION usage_records_parent_key_changed('environment_id');
CREATE OR REPLACE TRIGGER usage_records_api_key_key_changed
    BEFORE UPDATE OF id ON api_keys FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION usage_records_parent_key_changed('api_key_id');
CREATE OR REPLACE TRIGGER usage_records_region_key_changed
    BEFORE UPDATE OF id ON regions FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION usage_records_parent_key_changed('region_id');
CREATE OR REPLACE TRIGGER usage_records_model_key_changed
    BEFORE UPDATE OF id ON models FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION usage_records_parent_key_changed('model_id');
CREATE OR REPLACE TRIGGER usage_records_node_key_changed
    BEFORE UPDATE OF id ON nodes FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION usage_records_parent_key_changed('node_id');
CREATE OR REPLACE TRIGGER usage_records_tenant_truncated
    AFTER TRUNCATE ON tenants FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_truncated('tenant_id');
CREATE OR REPLACE TRIGGER usage_records_environment_truncated
    AFTER TRUNCATE ON environments FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_truncated('environment_id');
CREATE OR REPLACE TRIGGER usage_records_api_key_truncated
    AFTER TRUNCATE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_truncated('api_key_id');
CREATE OR REPLACE TRIGGER usage_records_region_truncated
    AFTER TRUNCATE ON regions FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_truncated('region_id');
CREATE OR REPLACE TRIGGER usage_records_model_truncated
    AFTER TRUNCATE ON models FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_truncated('model_id');
CREATE OR REPLACE TRIGGER usage_records_node_truncated
    AFTER TRUNCATE ON nodes FOR EACH STATEMENT EXECUTE FUNCTION usage_records_parent_truncated('node_id');
