-- =============================================================================
-- 11_usage_reference_checks.down.sql — reverses
-- database/schemas/11_usage_reference_checks.sql: the statement-level
-- reference checks go, usage_records' six foreign keys come back (rows
-- whose reference vanished meanwhile cannot exist: the triggers kept them
-- out, as the foreign keys did).
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
DROP FUNCTION IF EXISTS usage_reference_lock(regclass, text, uuid[]);

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
