-- =============================================================================
-- 11_usage_reference_checks.down.sql — reverses
-- database/schemas/11_usage_reference_checks.sql: the statement-level
-- reference checks go, usage_records' six foreign keys come back. Rows the
-- triggers could not guard (loaded with triggers disabled, say) are made
-- to fit first, as the foreign keys' actions would have: a row of a vanished
-- tenant is deleted, another vanished reference becomes NULL.
-- Idempotent (IF EXISTS, constraint guards). No BEGIN/COMMIT, no psql
-- meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP TRIGGER IF EXISTS usage_records_check_references ON usage_records;
DROP TRIGGER IF EXISTS usage_records_check_changed_references ON usage_records;
DROP TRIGGER IF EXISTS usage_records_tenant_deleted ON tenants;
DROP TRIGGER IF EXISTS usage_records_environment_deleted ON environments;
DROP TRIGGER IF EXISTS usage_records_api_key_deleted ON api_keys;
DROP TRIGGER IF EXISTS usage_records_region_deleted ON regions;
DROP TRIGGER IF EXISTS usage_records_model_deleted ON models;
DROP TRIGGER IF EXISTS usage_records_node_deleted ON nodes;
DROP TRIGGER IF EXISTS usage_records_tenant_key_changed ON tenants;
DROP TRIGGER IF EXISTS usage_records_environment_key_changed ON environments;
DROP TRIGGER IF EXISTS usage_records_api_key_key_changed ON api_keys;
DROP TRIGGER IF EXISTS usage_records_region_key_changed ON regions;
DROP TRIGGER IF EXISTS usage_records_model_key_changed ON models;
DROP TRIGGER IF EXISTS usage_records_node_key_changed ON nodes;
DROP FUNCTION IF EXISTS usage_records_check_references();
DROP FUNCTION IF EXISTS usage_records_check_changed_references();
DROP FUNCTION IF EXISTS usage_records_parent_deleted();
DROP FUNCTION IF EXISTS usage_records_parent_key_changed();
DROP TRIGGER IF EXISTS usage_records_tenant_truncated ON tenants;
DROP TRIGGER IF EXISTS usage_records_environment_truncated ON environments;
DROP TRIGGER IF EXISTS usage_records_api_key_truncated ON api_keys;
DROP TRIGGER IF EXISTS usage_records_region_truncated ON regions;
DROP TRIGGER IF EXISTS usage_records_model_truncated ON models;
DROP TRIGGER IF EXISTS usage_records_node_truncated ON nodes;
DROP FUNCTION IF EXISTS usage_reference_lock(regclass, text, uuid[]);
DROP FUNCTION IF EXISTS usage_records_parent_truncated();

DELETE FROM usage_records u WHERE NOT EXISTS (SELECT 1 FROM tenants p WHERE p.id = u.tenant_id);
UPDATE usage_records u SET environment_id = NULL
 WHERE environment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM environments p WHERE p.id = u.environment_id);
UPDATE usage_records u SET api_key_id = NULL
 WHERE api_key_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM api_keys p WHERE p.id = u.api_key_id);
UPDATE usage_records u SET region_id = NULL
 WHERE region_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM regions p WHERE p.id = u.region_id);
UPDATE usage_records u SET model_id = NULL
 WHERE model_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM models p WHERE p.id = u.model_id);
UPDATE usage_records u SET node_id = NULL
 WHERE node_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM nodes p WHERE p.id = u.node_id);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'usage_records'::regclass
                     AND conname = 'usage_records_tenant_id_fkey') THEN
        ALTER TABLE usage_records ADD CONSTRAINT usage_records_tenant_id_fkey
            FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'usage_records'::regclass
                     AND conname = 'usage_records_environment_id_fkey') THEN
        ALTER TABLE usage_records ADD CONSTRAINT usage_records_environment_id_fkey
            FOREIGN KEY (environment_id) REFERENCES environments (id) ON DELETE SET NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'usage_records'::regclass
                     AND conname = 'usage_records_api_key_id_fkey') THEN
        ALTER TABLE usage_records ADD CONSTRAINT usage_records_api_key_id_fkey
            FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE SET NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'usage_records'::regclass
                     AND conname = 'usage_records_region_id_fkey') THEN
        ALTER TABLE usage_records ADD CONSTRAINT usage_records_region_id_fkey
            FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE SET NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'usage_records'::regclass
                     AND conname = 'usage_records_model_id_fkey') THEN
        ALTER TABLE usage_records ADD CONSTRAINT usage_records_model_id_fkey
            FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE SET NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'usage_records'::regclass
                     AND conname = 'usage_records_node_id_fkey') THEN
        ALTER TABLE usage_records ADD CONSTRAINT usage_records_node_id_fkey
            FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE SET NULL;
    END IF;
END;
$$;
