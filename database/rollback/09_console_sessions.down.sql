-- =============================================================================
-- 09_console_sessions.down.sql — reverses database/schemas/09_console_sessions.sql
-- (every console session ends).
-- Idempotent (IF EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP TABLE IF EXISTS console_sessions;
