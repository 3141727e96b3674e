-- =============================================================================
-- 06_notification_delivery.sql — what delivering the events outbox needs on
-- top of 03_notifications.sql.
--
-- * The operator's channels are rows too (tenant_id NULL, at most one per
--   channel kind), mirrored from the NOTIFY_* environment at start, so a
--   delivery always names the channel row it goes to and a channel that
--   answers 410 can be disabled whoever owns it.
-- * A delivery is claimed with a lease (lease_until): two workers never send
--   the same row, and a crashed worker's claim expires.
-- * notification_attempts keeps every attempt (status, excerpt, error).
-- * events.dedup_key publishes an event at most once per key (quota.warning
--   once per environment and day, key.expiring once per key).
-- * Inserting a delivery sends NOTIFY crosslogic_deliveries, waking senders.
--
-- Idempotent. No BEGIN/COMMIT, no psql meta-commands.
-- Requires 01_core_tables.sql and 03_notifications.sql.
-- Reverse: database/rollback/06_notification_delivery.down.sql
-- =============================================================================

SET client_min_messages = warning;

ALTER TABLE notification_config ALTER COLUMN tenant_id DROP NOT NULL;
ALTER TABLE notification_config ADD COLUMN IF NOT EXISTS disabled_reason text;
CREATE UNIQUE INDEX IF NOT EXISTS notification_config_operator_channel_key
    ON notification_config (channel) WHERE tenant_id IS NULL;
COMMENT ON COLUMN notification_config.tenant_id IS 'NULL: one of the operator''s channels (from NOTIFY_* settings), which receive every event.';

ALTER TABLE notification_deliveries ADD COLUMN IF NOT EXISTS config_id   uuid;
ALTER TABLE notification_deliveries ADD COLUMN IF NOT EXISTS lease_until timestamptz;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'notification_deliveries'::regclass
                     AND conname = 'notification_deliveries_config_id_fkey') THEN
        ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_config_id_fkey
            FOREIGN KEY (config_id) REFERENCES notification_config (id) ON DELETE SET NULL;
    END IF;
END;
$$;
CREATE INDEX IF NOT EXISTS notification_deliveries_config_created_idx
    ON notification_deliveries (config_id, created_at);
COMMENT ON COLUMN notification_deliveries.lease_until IS 'A sender holds the row until then; an expired lease may be claimed again.';

CREATE TABLE IF NOT EXISTS notification_attempts (
    id              bigserial    NOT NULL,
    delivery_id     uuid         NOT NULL,
    attempt         integer      NOT NULL,
    started_at      timestamptz  NOT NULL DEFAULT now(),
    duration_ms     integer      NOT NULL DEFAULT 0,
    outcome         text         NOT NULL,
    response_status integer,
    response_body   text,
    error           text,
    CONSTRAINT notification_attempts_pkey             PRIMARY KEY (id),
    CONSTRAINT notification_attempts_delivery_id_fkey FOREIGN KEY (delivery_id)
        REFERENCES notification_deliveries (id) ON DELETE CASCADE,
    CONSTRAINT notification_attempts_outcome_check    CHECK (outcome IN ('sent', 'retry', 'failed'))
);
COMMENT ON TABLE notification_attempts IS 'Every delivery attempt: what was answered, how long it took.';
CREATE INDEX IF NOT EXISTS notification_attempts_delivery_idx ON notification_attempts (delivery_id, attempt);

ALTER TABLE events ADD COLUMN IF NOT EXISTS dedup_key text;
CREATE UNIQUE INDEX IF NOT EXISTS events_dedup_key_key ON events (dedup_key) WHERE dedup_key IS NOT NULL;
COMMENT ON COLUMN events.dedup_key IS 'Set for events published at most once per key (e.g. quota.warning:<environment>:<day>).';

CREATE OR REPLACE FUNCTION notify_delivery() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crosslogic_deliveries', NEW.id::text);
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER notification_deliveries_notify
    AFTER INSERT ON notification_deliveries FOR EACH ROW EXECUTE FUNCTION notify_delivery();
