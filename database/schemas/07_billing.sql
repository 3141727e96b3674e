-- =============================================================================
-- 07_billing.sql — what billing needs on top of 01_core_tables.sql: exact
-- cost per request, hourly rollups that know which hours changed, the
-- settlement of each tenant-hour (credits, then payable), the Stripe export
-- outbox, budgets, and dunning state from Stripe's invoices.
--
-- * usage_records.cost_exact_microdollars: the request's exact cost (token
--   prices in µ$/M × region multipliers in thousandths make every cost a
--   whole number of 10⁻⁹ µ$, so numeric(38,9) holds it exactly). Totals add
--   these and round once; cost_microdollars stays the per-request display.
-- * Every INSERT statement into usage_records queues the UTC hours it wrote
--   (usage_rollup_queue, one row per statement and hour, no row locks
--   shared between writers); the rollup worker recomputes those hours and
--   deletes exactly the queue rows it read, so a row that commits late
--   (a spool replayed after an outage) re-rolls its hour.
-- * usage_hourly gains the key dimension (api_key_id), the model's name,
--   failed requests, cached tokens and exact cost; its
--   unique key keeps the COALESCE form (one row per key even when parts are
--   NULL; PostgreSQL 14 has no NULLS NOT DISTINCT).
-- * usage_hours: per UTC hour, whether it is rolled up, settled, purged;
--   hours holding usage from before this migration are marked not billed.
-- * billing_tenant_hours: what each tenant-hour was billed (rounded once),
--   covered by credits and left payable, and its revision (late usage
--   settles again as a correction).
-- * billing_events becomes the Stripe export outbox (next_attempt_at,
--   revision); tenants get budgets, a suspension reason and the month whose
--   budget stopped their requests; billing_invoices tracks Stripe invoices
--   for dunning whatever order their webhooks arrive in.
--
-- Idempotent. No BEGIN/COMMIT, no psql meta-commands.
-- Requires 01_core_tables.sql and 04_auth_notify.sql.
-- Reverse: database/rollback/07_billing.down.sql
-- =============================================================================

SET client_min_messages = warning;

-- -----------------------------------------------------------------------------
-- Exact cost per request
-- -----------------------------------------------------------------------------
ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS cost_exact_microdollars numeric(38,9) NOT NULL DEFAULT 0;
-- Rows written before this migration only know their rounded cost.
UPDATE usage_records SET cost_exact_microdollars = cost_microdollars
 WHERE cost_exact_microdollars = 0 AND cost_microdollars <> 0;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'usage_records'::regclass
                     AND conname = 'usage_records_cost_exact_microdollars_check') THEN
        ALTER TABLE usage_records ADD CONSTRAINT usage_records_cost_exact_microdollars_check
            CHECK (cost_exact_microdollars >= 0);
    END IF;
END;
$$;
COMMENT ON COLUMN usage_records.cost_exact_microdollars IS 'Exact cost in micro-dollars (9 decimals: exact for any token count × price × region multiplier). Totals sum this and round once.';
COMMENT ON COLUMN usage_records.cost_microdollars IS 'The request''s cost rounded to a whole micro-dollar, for display; never summed for billing.';

-- -----------------------------------------------------------------------------
-- Which hours changed: one queue row per INSERT statement and hour
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS usage_rollup_queue (
    id        bigserial    NOT NULL,
    hour      timestamptz  NOT NULL,
    queued_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT usage_rollup_queue_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE usage_rollup_queue IS 'UTC hours that received usage rows since they were last rolled up; written by a statement trigger on usage_records.';
CREATE INDEX IF NOT EXISTS usage_rollup_queue_hour_idx ON usage_rollup_queue (hour);

CREATE OR REPLACE FUNCTION queue_usage_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_rollup_queue (hour)
    SELECT DISTINCT date_trunc('hour', "timestamp", 'UTC') FROM new_rows;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER usage_records_queue_rollup
    AFTER INSERT ON usage_records REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queue_usage_rollup();

-- A row corrected in place (its timestamp, tokens or cost) re-rolls the
-- hours it left and entered.
CREATE OR REPLACE FUNCTION queue_usage_rollup_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_rollup_queue (hour)
    SELECT DISTINCT date_trunc('hour', t, 'UTC')
      FROM (SELECT "timestamp" AS t FROM old_rows UNION SELECT "timestamp" FROM new_rows) moved;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER usage_records_queue_rollup_update
    AFTER UPDATE ON usage_records REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queue_usage_rollup_changed();

-- -----------------------------------------------------------------------------
-- Rollups: the key dimension and exact cost
-- -----------------------------------------------------------------------------
ALTER TABLE usage_hourly ADD COLUMN IF NOT EXISTS api_key_id                    uuid;
ALTER TABLE usage_hourly ADD COLUMN IF NOT EXISTS model_name                    text          NOT NULL DEFAULT '';
ALTER TABLE usage_hourly ADD COLUMN IF NOT EXISTS cached_tokens                 bigint        NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN IF NOT EXISTS failed_requests               bigint        NOT NULL DEFAULT 0;
ALTER TABLE usage_hourly ADD COLUMN IF NOT EXISTS total_cost_exact_microdollars numeric(38,9) NOT NULL DEFAULT 0;
-- Rollups are billing history: deleting an environment, model or region
-- must not delete them (01 cascaded those deletes; the raw rows only lose
-- the reference). A deleted tenant still takes its rollups with it.
ALTER TABLE usage_hourly DROP CONSTRAINT IF EXISTS usage_hourly_environment_id_fkey;
ALTER TABLE usage_hourly DROP CONSTRAINT IF EXISTS usage_hourly_model_id_fkey;
ALTER TABLE usage_hourly DROP CONSTRAINT IF EXISTS usage_hourly_region_id_fkey;
DO $$
BEGIN
    -- Re-key once (the name stays, so re-applying 01 keeps this definition).
    -- The model is keyed by name too: a row whose model_id is NULL (a
    -- model that left the catalog) still reports under its own name.
    IF to_regclass('public.usage_hourly_key_uniq') IS NULL
       OR pg_get_indexdef(to_regclass('public.usage_hourly_key_uniq')) NOT LIKE '%api_key_id%' THEN
        DROP INDEX IF EXISTS usage_hourly_key_uniq;
        CREATE UNIQUE INDEX usage_hourly_key_uniq ON usage_hourly (
            hour,
            tenant_id,
            COALESCE(environment_id, '00000000-0000-0000-0000-000000000000'::uuid),
            COALESCE(model_id,       '00000000-0000-0000-0000-000000000000'::uuid),
            COALESCE(region_id,      '00000000-0000-0000-0000-000000000000'::uuid),
            COALESCE(api_key_id,     '00000000-0000-0000-0000-000000000000'::uuid),
            model_name
        );
    END IF;
END;
$$;
CREATE INDEX IF NOT EXISTS usage_hourly_hour_idx        ON usage_hourly (hour);
CREATE INDEX IF NOT EXISTS usage_hourly_key_hour_idx    ON usage_hourly (api_key_id, hour);
COMMENT ON COLUMN usage_hourly.total_cost_exact_microdollars IS 'Σ usage_records.cost_exact_microdollars of the group: exact.';
COMMENT ON COLUMN usage_hourly.total_cost_microdollars IS 'total_cost_exact_microdollars rounded once to a whole micro-dollar.';

-- -----------------------------------------------------------------------------
-- The state of each UTC hour
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS usage_hours (
    hour           timestamptz  NOT NULL,
    rolled_up_at   timestamptz,
    settle_pending boolean      NOT NULL DEFAULT false,
    settled_at     timestamptz,
    purged_at      timestamptz,
    purge_max_id   bigint,
    purge_done     boolean      NOT NULL DEFAULT false,
    not_billed     boolean      NOT NULL DEFAULT false,
    CONSTRAINT usage_hours_pkey PRIMARY KEY (hour)
);
COMMENT ON TABLE usage_hours IS 'Per UTC hour: rolled up (usage_hourly is current), settled (billing_tenant_hours is current), raw rows purged.';
COMMENT ON COLUMN usage_hours.purge_max_id IS 'The highest usage_records.id of the hour when its purge began; rows above it arrived later and are folded into the rollup.';
CREATE INDEX IF NOT EXISTS usage_hours_settle_idx ON usage_hours (hour) WHERE settle_pending;
COMMENT ON COLUMN usage_hours.not_billed IS 'An hour from before billing existed: rolled up for reports, never settled (so a later change to its rows cannot bill it).';
-- Hours that hold usage from before this migration are not billed.
INSERT INTO usage_hours (hour, not_billed)
SELECT DISTINCT date_trunc('hour', "timestamp", 'UTC'), true FROM usage_records
ON CONFLICT (hour) DO NOTHING;

-- request_ids of rows folded into an hour whose raw rows were purged: a
-- replay of one of them is recognised and not counted again.
CREATE TABLE IF NOT EXISTS usage_folded (
    request_id text         NOT NULL,
    folded_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT usage_folded_pkey PRIMARY KEY (request_id)
);
COMMENT ON TABLE usage_folded IS 'Late usage rows added to the rollup of an already purged hour (and deleted): a replayed copy is not added twice.';

-- -----------------------------------------------------------------------------
-- Settlement of each tenant-hour
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS billing_tenant_hours (
    tenant_id               uuid          NOT NULL,
    hour                    timestamptz   NOT NULL,
    cost_exact_microdollars numeric(38,9) NOT NULL,
    billed_microdollars     bigint        NOT NULL,
    credit_microdollars     bigint        NOT NULL DEFAULT 0,
    payable_microdollars    bigint        NOT NULL,
    revision                integer       NOT NULL DEFAULT 0,
    created_at              timestamptz   NOT NULL DEFAULT now(),
    updated_at              timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT billing_tenant_hours_pkey           PRIMARY KEY (tenant_id, hour),
    CONSTRAINT billing_tenant_hours_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT billing_tenant_hours_amounts_check  CHECK (billed_microdollars >= 0 AND credit_microdollars >= 0
                                                          AND payable_microdollars = billed_microdollars - credit_microdollars)
);
COMMENT ON TABLE billing_tenant_hours IS 'A tenant-hour as billed: its exact cost rounded once, the part credits covered, the payable rest; revision counts corrections.';
CREATE INDEX IF NOT EXISTS billing_tenant_hours_hour_idx ON billing_tenant_hours (hour);

CREATE OR REPLACE TRIGGER billing_tenant_hours_set_updated_at
    BEFORE UPDATE ON billing_tenant_hours FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- billing_events as the Stripe export outbox
-- -----------------------------------------------------------------------------
ALTER TABLE billing_events ADD COLUMN IF NOT EXISTS revision        integer;
ALTER TABLE billing_events ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz;
CREATE INDEX IF NOT EXISTS billing_events_due_idx ON billing_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS billing_events_period_idx ON billing_events (period_start, event_type);
COMMENT ON COLUMN billing_events.idempotency_key IS 'Usage exports: the Stripe meter event identifier (tenant, hour, revision), so a resend is harmless.';

CREATE INDEX IF NOT EXISTS credits_tenant_expiry_idx ON credits (tenant_id, expires_at) WHERE remaining_microdollars > 0;

-- -----------------------------------------------------------------------------
-- Budgets, suspension reasons, dunning
-- -----------------------------------------------------------------------------
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS suspension_reason           text;
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS monthly_budget_microdollars bigint;
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS budget_hard_stop            boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS spend_blocked_month         date;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'tenants'::regclass
                     AND conname = 'tenants_suspension_reason_check') THEN
        ALTER TABLE tenants ADD CONSTRAINT tenants_suspension_reason_check
            CHECK (suspension_reason IN ('operator', 'non_payment'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'tenants'::regclass
                     AND conname = 'tenants_monthly_budget_microdollars_check') THEN
        ALTER TABLE tenants ADD CONSTRAINT tenants_monthly_budget_microdollars_check
            CHECK (monthly_budget_microdollars > 0);
    END IF;
END;
$$;
-- Suspensions made before reasons existed were the operator's.
UPDATE tenants SET suspension_reason = 'operator' WHERE status = 'suspended' AND suspension_reason IS NULL;
COMMENT ON COLUMN tenants.suspension_reason IS 'Why a suspended tenant is suspended: operator (only an operator reactivates) or non_payment (a paid invoice reactivates).';
COMMENT ON COLUMN tenants.spend_blocked_month IS 'The UTC month (its first day) whose budget ran out with budget_hard_stop: requests answer 429 insufficient_quota until the budget is raised or the month turns.';

-- Gateways refuse a tenant over its budget within a second: tell them.
CREATE OR REPLACE TRIGGER tenants_notify_billing
    AFTER UPDATE OF spend_blocked_month ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_auth_change();

CREATE TABLE IF NOT EXISTS billing_invoices (
    invoice_id text         NOT NULL,
    tenant_id  uuid         NOT NULL,
    failed_at  timestamptz,
    paid_at    timestamptz,
    voided_at  timestamptz,
    amount_due bigint,
    currency   text,
    updated_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT billing_invoices_pkey           PRIMARY KEY (invoice_id),
    CONSTRAINT billing_invoices_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
);
COMMENT ON TABLE billing_invoices IS 'Stripe invoices seen in webhooks: unpaid = failed_at set, paid_at and voided_at NULL, whatever order the events came in.';
COMMENT ON COLUMN billing_invoices.voided_at IS 'invoice.voided or invoice.marked_uncollectible: nothing is owed on it any more.';
CREATE INDEX IF NOT EXISTS billing_invoices_unpaid_idx ON billing_invoices (tenant_id, failed_at)
    WHERE paid_at IS NULL AND voided_at IS NULL AND failed_at IS NOT NULL;

CREATE OR REPLACE TRIGGER billing_invoices_set_updated_at
    BEFORE UPDATE ON billing_invoices FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE INDEX IF NOT EXISTS webhook_events_unprocessed_idx ON webhook_events (received_at) WHERE NOT processed;
