-- =============================================================================
-- 04_auth_notify.sql — tell running gateways at once when what authenticates
-- or limits a request changes.
--
-- Gateways cache API keys in memory (no database query per request). When a
-- key, its environment or its tenant changes status, limits or expiry, these
-- triggers send NOTIFY crosslogic_auth, '<table>:<id>' and every gateway drops
-- the affected cache entries, so revocation and suspension take effect
-- everywhere within a second instead of after a cache TTL. `UPDATE OF` lists
-- only the columns that matter, so batched `last_used_at` writes stay silent.
--
-- Idempotent. No BEGIN/COMMIT, no psql meta-commands.
-- Reverse: database/rollback/04_auth_notify.down.sql
-- =============================================================================

SET client_min_messages = warning;

CREATE OR REPLACE FUNCTION notify_auth_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('crosslogic_auth', TG_TABLE_NAME || ':' || OLD.id::text);
    ELSE
        PERFORM pg_notify('crosslogic_auth', TG_TABLE_NAME || ':' || NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER api_keys_notify_auth
    AFTER UPDATE OF status, role, expires_at, rate_limit_requests_per_min, rate_limit_tokens_per_min,
                    concurrency_limit, environment_id, tenant_id, key_hash
       OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION notify_auth_change();

CREATE OR REPLACE TRIGGER environments_notify_auth
    AFTER UPDATE OF status, region, model_list, quota_tokens_per_day, quota_tokens_per_minute,
                    concurrency_limit, rate_limit_requests_per_min
       OR DELETE ON environments
    FOR EACH ROW EXECUTE FUNCTION notify_auth_change();

CREATE OR REPLACE TRIGGER tenants_notify_auth
    AFTER UPDATE OF status, rate_limit_requests_per_min, rate_limit_tokens_per_min, concurrency_limit
       OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_auth_change();
