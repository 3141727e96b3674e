-- =============================================================================
-- 09_console_sessions.sql — sessions of the web console (/console).
--
-- A browser signs in with the operator token or a tenant's API key and gets
-- a random session token in an HttpOnly cookie; only its SHA-256 is stored
-- here, so a copy of the database cannot be replayed as a login. Sessions
-- live in PostgreSQL (not in a process) so that every replica behind a load
-- balancer knows them, and a logout or a revoked key ends them everywhere.
--
--   operator sessions   api_key_id IS NULL; credential_hash is the SHA-256 of
--                       the operator token they signed in with, so rotating
--                       ADMIN_API_TOKEN ends them.
--   tenant sessions     api_key_id names the key; the key's status, expiry
--                       and role are read on every request (a revoked key's
--                       sessions end at once; deleting the key deletes them).
--
-- Idempotent (IF NOT EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- Requires 01_core_tables.sql.
-- Reverse: database/rollback/09_console_sessions.down.sql
-- =============================================================================

SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS console_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash text NOT NULL,
    credential_hash text,
    api_key_id uuid REFERENCES api_keys(id) ON DELETE CASCADE,
    tenant_id uuid REFERENCES tenants(id) ON DELETE CASCADE,
    client_ip text,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT console_sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT console_sessions_principal_check CHECK (
        (api_key_id IS NULL AND tenant_id IS NULL AND credential_hash IS NOT NULL)
        OR (api_key_id IS NOT NULL AND tenant_id IS NOT NULL AND credential_hash IS NULL)),
    CONSTRAINT console_sessions_user_agent_check CHECK (char_length(user_agent) <= 512)
);

CREATE INDEX IF NOT EXISTS console_sessions_expires_idx ON console_sessions (expires_at);
CREATE INDEX IF NOT EXISTS console_sessions_key_idx ON console_sessions (api_key_id) WHERE api_key_id IS NOT NULL;

COMMENT ON TABLE console_sessions IS 'Web console sessions: SHA-256 of the cookie token, the operator or the tenant key signed in, idle and absolute expiry.';
