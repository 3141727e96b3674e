-- =============================================================================
-- 07_billing.down.sql — reverses database/schemas/07_billing.sql. The rollup
-- key goes back to 01's (rows of one hour, tenant, environment, model and
-- region are merged first so the old unique index can be built).
-- Idempotent (IF EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP INDEX IF EXISTS webhook_events_unprocessed_idx;
DROP TABLE IF EXISTS billing_invoices;
DROP TRIGGER IF EXISTS tenants_notify_billing ON tenants;
ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_monthly_budget_microdollars_check;
ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_suspension_reason_check;
ALTER TABLE tenants DROP COLUMN IF EXISTS spend_blocked_month;
ALTER TABLE tenants DROP COLUMN IF EXISTS budget_hard_stop;
ALTER TABLE tenants DROP COLUMN IF EXISTS monthly_budget_microdollars;
ALTER TABLE tenants DROP COLUMN IF EXISTS suspension_reason;
DROP INDEX IF EXISTS credits_tenant_expiry_idx;
DROP INDEX IF EXISTS billing_events_period_idx;
DROP INDEX IF EXISTS billing_events_due_idx;
ALTER TABLE billing_events DROP COLUMN IF EXISTS next_attempt_at;
ALTER TABLE billing_events DROP COLUMN IF EXISTS revision;
DROP TABLE IF EXISTS billing_tenant_hours;
DROP TABLE IF EXISTS usage_hours;
DROP INDEX IF EXISTS usage_hourly_key_hour_idx;
DROP INDEX IF EXISTS usage_hourly_hour_idx;
DROP INDEX IF EXISTS usage_hourly_key_uniq;
-- Rollups split by key cannot be merged exactly (percentiles); drop them,
-- they are rebuilt from usage_records by the next rollup.
DELETE FROM usage_hourly WHERE api_key_id IS NOT NULL OR model_name <> '';
ALTER TABLE usage_hourly DROP CONSTRAINT IF EXISTS usage_hourly_api_key_id_fkey;
ALTER TABLE usage_hourly DROP COLUMN IF EXISTS total_cost_exact_microdollars;
ALTER TABLE usage_hourly DROP COLUMN IF EXISTS failed_requests;
ALTER TABLE usage_hourly DROP COLUMN IF EXISTS cached_tokens;
ALTER TABLE usage_hourly DROP COLUMN IF EXISTS api_key_id;
ALTER TABLE usage_hourly DROP COLUMN IF EXISTS model_name;
CREATE UNIQUE INDEX IF NOT EXISTS usage_hourly_key_uniq ON usage_hourly (
    hour,
    tenant_id,
    COALESCE(environment_id, '00000000-0000-0000-0000-000000000000'::uuid),
    COALESCE(model_id,       '00000000-0000-0000-0000-000000000000'::uuid),
    COALESCE(region_id,      '00000000-0000-0000-0000-000000000000'::uuid)
);
DROP TRIGGER IF EXISTS usage_records_queue_rollup_update ON usage_records;
DROP FUNCTION IF EXISTS queue_usage_rollup_changed();
DROP TRIGGER IF EXISTS usage_records_queue_rollup ON usage_records;
DROP FUNCTION IF EXISTS queue_usage_rollup();
DROP TABLE IF EXISTS usage_rollup_queue;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_cost_exact_microdollars_check;
ALTER TABLE usage_records DROP COLUMN IF EXISTS cost_exact_microdollars;
