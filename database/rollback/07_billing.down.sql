-- =============================================================================
-- 07_billing.down.sql — reverses database/schemas/07_billing.sql. The rollup
-- key goes back to 01's: rows of one hour, tenant, environment, model and
-- region are merged first (sums kept, latency as a weighted mean; the
-- percentiles of merged rows cannot be recomputed and become NULL), so the
-- old unique index can be built. The foreign keys 01 had are restored
-- NOT VALID (rollups of since-deleted rows may remain).
-- Idempotent (IF EXISTS, guarded blocks). No BEGIN/COMMIT, no psql meta-commands.
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
DROP TABLE IF EXISTS usage_folded;
DROP TABLE IF EXISTS billing_tenant_hours;
DROP TABLE IF EXISTS usage_hours;
DROP INDEX IF EXISTS usage_hourly_key_hour_idx;
DROP INDEX IF EXISTS usage_hourly_hour_idx;
DROP INDEX IF EXISTS usage_hourly_key_uniq;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_name = 'usage_hourly' AND column_name = 'api_key_id') THEN
        CREATE TEMP TABLE usage_hourly_merged ON COMMIT DROP AS
        SELECT hour, tenant_id, environment_id, model_id, region_id,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(total_tokens) AS total_tokens, sum(total_requests) AS total_requests,
               round(sum(total_cost_exact_microdollars))::bigint AS total_cost_microdollars,
               sum(avg_latency_ms * total_requests) / NULLIF(sum(total_requests), 0) AS avg_latency_ms,
               CASE WHEN count(*) = 1 THEN max(p50_latency_ms) END AS p50_latency_ms,
               CASE WHEN count(*) = 1 THEN max(p95_latency_ms) END AS p95_latency_ms,
               CASE WHEN count(*) = 1 THEN max(p99_latency_ms) END AS p99_latency_ms
          FROM usage_hourly
         GROUP BY hour, tenant_id, environment_id, model_id, region_id;
        DELETE FROM usage_hourly;
        INSERT INTO usage_hourly (hour, tenant_id, environment_id, model_id, region_id, prompt_tokens,
                                  completion_tokens, total_tokens, total_requests, total_cost_microdollars,
                                  avg_latency_ms, p50_latency_ms, p95_latency_ms, p99_latency_ms)
        SELECT * FROM usage_hourly_merged;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'usage_hourly_environment_id_fkey') THEN
        ALTER TABLE usage_hourly ADD CONSTRAINT usage_hourly_environment_id_fkey
            FOREIGN KEY (environment_id) REFERENCES environments (id) ON DELETE CASCADE NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'usage_hourly_model_id_fkey') THEN
        ALTER TABLE usage_hourly ADD CONSTRAINT usage_hourly_model_id_fkey
            FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE CASCADE NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'usage_hourly_region_id_fkey') THEN
        ALTER TABLE usage_hourly ADD CONSTRAINT usage_hourly_region_id_fkey
            FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE CASCADE NOT VALID;
    END IF;
END;
$$;
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
