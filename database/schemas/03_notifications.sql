-- =============================================================================
-- 03_notifications.sql — event notification delivery (Discord, Slack, email,
-- generic webhooks) with retries and per-tenant configuration.
--
-- Idempotent; no BEGIN/COMMIT, no psql meta-commands (see 01_core_tables.sql).
-- Requires 01_core_tables.sql (events, tenants, set_updated_at()).
-- Reverse: database/rollback/03_notifications.down.sql
-- =============================================================================

SET client_min_messages = warning;

-- -----------------------------------------------------------------------------
-- notification_deliveries (one row per event x channel x destination)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS notification_deliveries (
    id              uuid         NOT NULL DEFAULT gen_random_uuid(),
    event_id        bigint,
    event_type      text         NOT NULL,
    tenant_id       uuid,
    channel         text         NOT NULL,
    destination     text         NOT NULL,
    status          text         NOT NULL DEFAULT 'pending',
    retry_count     integer      NOT NULL DEFAULT 0,
    max_retries     integer      NOT NULL DEFAULT 8,
    request_body    jsonb,
    response_status integer,
    response_body   text,
    error           text,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    failed_at       timestamptz,
    next_retry_at   timestamptz,
    CONSTRAINT notification_deliveries_pkey                   PRIMARY KEY (id),
    CONSTRAINT notification_deliveries_event_channel_dest_key UNIQUE (event_id, channel, destination),
    CONSTRAINT notification_deliveries_event_id_fkey          FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE,
    CONSTRAINT notification_deliveries_tenant_id_fkey         FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT notification_deliveries_channel_check          CHECK (channel IN ('discord', 'slack', 'email', 'webhook')),
    CONSTRAINT notification_deliveries_status_check           CHECK (status IN ('pending', 'sent', 'failed', 'retry'))
);
COMMENT ON TABLE notification_deliveries IS 'Delivery log and retry queue; unique (event_id, channel, destination) keeps concurrent fan-out from duplicating.';

CREATE INDEX IF NOT EXISTS notification_deliveries_due_idx
    ON notification_deliveries (next_retry_at) WHERE status IN ('pending', 'retry');
CREATE INDEX IF NOT EXISTS notification_deliveries_tenant_created_idx
    ON notification_deliveries (tenant_id, created_at);

CREATE OR REPLACE TRIGGER notification_deliveries_set_updated_at
    BEFORE UPDATE ON notification_deliveries FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- notification_config (one row per tenant and channel)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS notification_config (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant_id   uuid         NOT NULL,
    channel     text         NOT NULL,
    enabled     boolean      NOT NULL DEFAULT true,
    destination text         NOT NULL,
    event_types text[],
    settings    jsonb        NOT NULL DEFAULT '{}',
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT notification_config_pkey               PRIMARY KEY (id),
    CONSTRAINT notification_config_tenant_channel_key UNIQUE (tenant_id, channel),
    CONSTRAINT notification_config_tenant_id_fkey     FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT notification_config_channel_check      CHECK (channel IN ('discord', 'slack', 'email', 'webhook'))
);
COMMENT ON TABLE notification_config IS 'Per-tenant notification channels; event_types NULL = all events.';

CREATE OR REPLACE TRIGGER notification_config_set_updated_at
    BEFORE UPDATE ON notification_config FOR EACH ROW EXECUTE FUNCTION set_updated_at();
