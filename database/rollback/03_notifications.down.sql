-- =============================================================================
-- 03_notifications.down.sql — reverses database/schemas/03_notifications.sql
--
-- Idempotent (IF EXISTS). Deletes all notification configuration and the
-- delivery log. No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP TABLE IF EXISTS notification_config;
DROP TABLE IF EXISTS notification_deliveries;
