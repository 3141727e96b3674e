-- =============================================================================
-- 06_notification_delivery.down.sql — reverses
-- database/schemas/06_notification_delivery.sql. Operator channel rows
-- (tenant_id NULL) are removed so tenant_id can be NOT NULL again.
-- Idempotent (IF EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP TRIGGER IF EXISTS notification_deliveries_notify ON notification_deliveries;
DROP FUNCTION IF EXISTS notify_delivery();
DROP INDEX IF EXISTS events_dedup_key_key;
ALTER TABLE events DROP COLUMN IF EXISTS dedup_key;
DROP TABLE IF EXISTS notification_attempts;
DROP INDEX IF EXISTS notification_deliveries_config_created_idx;
ALTER TABLE notification_deliveries DROP CONSTRAINT IF EXISTS notification_deliveries_config_id_fkey;
ALTER TABLE notification_deliveries DROP COLUMN IF EXISTS lease_until;
ALTER TABLE notification_deliveries DROP COLUMN IF EXISTS config_id;
DROP INDEX IF EXISTS notification_config_operator_channel_key;
DELETE FROM notification_config WHERE tenant_id IS NULL;
ALTER TABLE notification_config DROP COLUMN IF EXISTS disabled_reason;
ALTER TABLE notification_config ALTER COLUMN tenant_id SET NOT NULL;
