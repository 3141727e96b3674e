-- =============================================================================
-- 04_auth_notify.down.sql — reverses database/schemas/04_auth_notify.sql.
-- Idempotent (IF EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP TRIGGER IF EXISTS tenants_notify_auth ON tenants;
DROP TRIGGER IF EXISTS environments_notify_auth ON environments;
DROP TRIGGER IF EXISTS api_keys_notify_auth ON api_keys;
DROP FUNCTION IF EXISTS notify_auth_change();
