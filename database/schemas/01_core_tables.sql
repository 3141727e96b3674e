-- =============================================================================
-- 01_core_tables.sql — CrossLogic AI IaaS core schema
--
-- Idempotent: applying this file twice is harmless (no error, no duplicate
-- seed rows, no schema change). No BEGIN/COMMIT and no psql meta-commands:
-- the same text runs under `psql -f`, database/migrate.sh and
-- `crosslogic db migrate` (which wraps it in one transaction).
-- Requires PostgreSQL 14+ (CREATE OR REPLACE TRIGGER); no extensions.
-- Reverse: database/rollback/01_core_tables.down.sql
-- =============================================================================

SET client_min_messages = warning;

-- -----------------------------------------------------------------------------
-- Shared functions
-- -----------------------------------------------------------------------------

-- BEFORE UPDATE trigger on every table that has updated_at.
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- AFTER INSERT trigger on events: wakes delivery workers (payload = events.id).
CREATE OR REPLACE FUNCTION notify_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crosslogic_events', NEW.id::text);
    RETURN NULL;
END;
$$;

-- -----------------------------------------------------------------------------
-- regions
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS regions (
    id               uuid          NOT NULL DEFAULT gen_random_uuid(),
    code             text          NOT NULL,
    name             text          NOT NULL,
    country          text          NOT NULL,
    city             text          NOT NULL,
    cloud_providers  jsonb         NOT NULL DEFAULT '[]',
    provider_regions jsonb         NOT NULL DEFAULT '{}',
    cost_multiplier  numeric(6,3)  NOT NULL DEFAULT 1.000,
    status           text          NOT NULL DEFAULT 'active',
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT regions_pkey                  PRIMARY KEY (id),
    CONSTRAINT regions_code_key              UNIQUE (code),
    CONSTRAINT regions_cost_multiplier_check CHECK (cost_multiplier > 0),
    CONSTRAINT regions_status_check          CHECK (status IN ('active', 'degraded', 'maintenance', 'offline'))
);
COMMENT ON TABLE regions IS 'Regions served by the platform; provider_regions maps each cloud to its own region name.';

CREATE OR REPLACE TRIGGER regions_set_updated_at
    BEFORE UPDATE ON regions FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO regions (code, name, country, city, cloud_providers, provider_regions, cost_multiplier) VALUES
    ('in-mumbai',    'Mumbai',                   'India',     'Mumbai',    '["aws","gcp","azure"]',
     '{"aws":"ap-south-1","gcp":"asia-south1","azure":"centralindia"}',             0.700),
    ('us-east',      'US East (Virginia)',       'USA',       'Ashburn',   '["aws","gcp","azure"]',
     '{"aws":"us-east-1","gcp":"us-east4","azure":"eastus"}',                       1.000),
    ('eu-west',      'EU West (Frankfurt)',      'Germany',   'Frankfurt', '["aws","gcp","azure"]',
     '{"aws":"eu-central-1","gcp":"europe-west3","azure":"germanywestcentral"}',    1.100),
    ('ap-southeast', 'Asia Pacific (Singapore)', 'Singapore', 'Singapore', '["aws","gcp","azure"]',
     '{"aws":"ap-southeast-1","gcp":"asia-southeast1","azure":"southeastasia"}',    0.900)
ON CONFLICT (code) DO NOTHING;

-- -----------------------------------------------------------------------------
-- tenants
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS tenants (
    id                               uuid         NOT NULL DEFAULT gen_random_uuid(),
    name                             text         NOT NULL,
    email                            text         NOT NULL,
    stripe_customer_id               text,
    status                           text         NOT NULL DEFAULT 'active',
    billing_plan                     text         NOT NULL DEFAULT 'serverless',
    reserved_capacity_tokens_per_sec integer      NOT NULL DEFAULT 0,
    region_preferences               jsonb        NOT NULL DEFAULT '[]',
    rate_limit_requests_per_min      integer,
    rate_limit_tokens_per_min        integer,
    concurrency_limit                integer,
    metadata                         jsonb        NOT NULL DEFAULT '{}',
    created_at                       timestamptz  NOT NULL DEFAULT now(),
    updated_at                       timestamptz  NOT NULL DEFAULT now(),
    deleted_at                       timestamptz,
    CONSTRAINT tenants_pkey                                   PRIMARY KEY (id),
    CONSTRAINT tenants_email_key                              UNIQUE (email),
    CONSTRAINT tenants_stripe_customer_id_key                 UNIQUE (stripe_customer_id),
    CONSTRAINT tenants_status_check                           CHECK (status IN ('active', 'suspended', 'deleted')),
    CONSTRAINT tenants_billing_plan_check                     CHECK (billing_plan IN ('serverless', 'reserved', 'enterprise')),
    CONSTRAINT tenants_reserved_capacity_tokens_per_sec_check CHECK (reserved_capacity_tokens_per_sec >= 0),
    CONSTRAINT tenants_rate_limit_requests_per_min_check      CHECK (rate_limit_requests_per_min > 0),
    CONSTRAINT tenants_rate_limit_tokens_per_min_check        CHECK (rate_limit_tokens_per_min > 0),
    CONSTRAINT tenants_concurrency_limit_check                CHECK (concurrency_limit > 0)
);
COMMENT ON TABLE tenants IS 'Customer organisations; NULL limit columns mean "use the platform default".';

CREATE INDEX IF NOT EXISTS tenants_status_idx ON tenants (status);

CREATE OR REPLACE TRIGGER tenants_set_updated_at
    BEFORE UPDATE ON tenants FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- environments
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS environments (
    id                          uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant_id                   uuid         NOT NULL,
    name                        text         NOT NULL,
    region                      text,
    model_list                  jsonb        NOT NULL DEFAULT '[]',
    quota_tokens_per_day        bigint       NOT NULL DEFAULT 1000000,
    quota_tokens_per_minute     integer      NOT NULL DEFAULT 10000,
    concurrency_limit           integer      NOT NULL DEFAULT 10,
    rate_limit_requests_per_min integer,
    status                      text         NOT NULL DEFAULT 'active',
    metadata                    jsonb        NOT NULL DEFAULT '{}',
    created_at                  timestamptz  NOT NULL DEFAULT now(),
    updated_at                  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT environments_pkey                              PRIMARY KEY (id),
    CONSTRAINT environments_tenant_id_name_key                UNIQUE (tenant_id, name),
    CONSTRAINT environments_tenant_id_fkey                    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT environments_region_fkey                       FOREIGN KEY (region) REFERENCES regions (code) ON UPDATE CASCADE,
    CONSTRAINT environments_quota_tokens_per_day_check        CHECK (quota_tokens_per_day >= 0),
    CONSTRAINT environments_quota_tokens_per_minute_check     CHECK (quota_tokens_per_minute >= 0),
    CONSTRAINT environments_concurrency_limit_check           CHECK (concurrency_limit >= 0),
    CONSTRAINT environments_rate_limit_requests_per_min_check CHECK (rate_limit_requests_per_min > 0),
    CONSTRAINT environments_status_check                      CHECK (status IN ('active', 'suspended'))
);
COMMENT ON TABLE environments IS 'Per-tenant environments (dev/staging/prod) with quotas; model_list is an allow-list, empty = all models.';

CREATE OR REPLACE TRIGGER environments_set_updated_at
    BEFORE UPDATE ON environments FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- api_keys
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS api_keys (
    id                          uuid         NOT NULL DEFAULT gen_random_uuid(),
    key_hash                    text         NOT NULL,
    key_prefix                  text         NOT NULL,
    tenant_id                   uuid         NOT NULL,
    environment_id              uuid         NOT NULL,
    user_id                     text,
    name                        text         NOT NULL DEFAULT '',
    role                        text         NOT NULL DEFAULT 'developer',
    rate_limit_tokens_per_min   integer,
    rate_limit_requests_per_min integer      NOT NULL DEFAULT 60,
    concurrency_limit           integer      NOT NULL DEFAULT 5,
    status                      text         NOT NULL DEFAULT 'active',
    created_at                  timestamptz  NOT NULL DEFAULT now(),
    updated_at                  timestamptz  NOT NULL DEFAULT now(),
    last_used_at                timestamptz,
    expires_at                  timestamptz,
    revoked_at                  timestamptz,
    metadata                    jsonb        NOT NULL DEFAULT '{}',
    CONSTRAINT api_keys_pkey                              PRIMARY KEY (id),
    CONSTRAINT api_keys_key_hash_key                      UNIQUE (key_hash),
    CONSTRAINT api_keys_tenant_id_fkey                    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_environment_id_fkey               FOREIGN KEY (environment_id) REFERENCES environments (id) ON DELETE CASCADE,
    CONSTRAINT api_keys_role_check                        CHECK (role IN ('admin', 'developer', 'read-only')),
    CONSTRAINT api_keys_rate_limit_tokens_per_min_check   CHECK (rate_limit_tokens_per_min > 0),
    CONSTRAINT api_keys_rate_limit_requests_per_min_check CHECK (rate_limit_requests_per_min > 0),
    CONSTRAINT api_keys_concurrency_limit_check           CHECK (concurrency_limit > 0),
    CONSTRAINT api_keys_status_check                      CHECK (status IN ('active', 'suspended', 'revoked'))
);
COMMENT ON TABLE api_keys IS 'API keys: only the hash is stored; key_prefix identifies a key in logs and lists.';

CREATE INDEX IF NOT EXISTS api_keys_key_prefix_idx     ON api_keys (key_prefix);
CREATE INDEX IF NOT EXISTS api_keys_tenant_id_idx      ON api_keys (tenant_id);
CREATE INDEX IF NOT EXISTS api_keys_environment_id_idx ON api_keys (environment_id);

CREATE OR REPLACE TRIGGER api_keys_set_updated_at
    BEFORE UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- models
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS models (
    id                         uuid           NOT NULL DEFAULT gen_random_uuid(),
    name                       text           NOT NULL,
    family                     text           NOT NULL,
    size                       text           NOT NULL,
    type                       text           NOT NULL,
    context_length             integer        NOT NULL,
    vram_required_gb           integer        NOT NULL,
    price_input_per_million    numeric(12,6)  NOT NULL DEFAULT 0,
    price_output_per_million   numeric(12,6)  NOT NULL DEFAULT 0,
    tokens_per_second_capacity integer        NOT NULL DEFAULT 100,
    status                     text           NOT NULL DEFAULT 'active',
    metadata                   jsonb          NOT NULL DEFAULT '{}',
    created_at                 timestamptz    NOT NULL DEFAULT now(),
    updated_at                 timestamptz    NOT NULL DEFAULT now(),
    CONSTRAINT models_pkey                             PRIMARY KEY (id),
    CONSTRAINT models_name_key                         UNIQUE (name),
    CONSTRAINT models_type_check                       CHECK (type IN ('completion', 'chat', 'embedding')),
    CONSTRAINT models_context_length_check             CHECK (context_length > 0),
    CONSTRAINT models_vram_required_gb_check           CHECK (vram_required_gb > 0),
    CONSTRAINT models_price_input_per_million_check    CHECK (price_input_per_million >= 0),
    CONSTRAINT models_price_output_per_million_check   CHECK (price_output_per_million >= 0),
    CONSTRAINT models_tokens_per_second_capacity_check CHECK (tokens_per_second_capacity > 0),
    CONSTRAINT models_status_check                     CHECK (status IN ('active', 'deprecated', 'beta'))
);
COMMENT ON TABLE models IS 'Model catalog; prices are USD per million tokens.';

CREATE OR REPLACE TRIGGER models_set_updated_at
    BEFORE UPDATE ON models FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO models (name, family, size, type, context_length, vram_required_gb,
                    price_input_per_million, price_output_per_million, tokens_per_second_capacity, metadata) VALUES
    ('llama-3-8b',   'llama',   '8B',   'chat',      8192,  16, 0.05, 0.05,  100, '{"hf_model":"meta-llama/Meta-Llama-3-8B-Instruct"}'),
    ('llama-3-70b',  'llama',   '70B',  'chat',      8192,  80, 0.60, 0.60,   50, '{"hf_model":"meta-llama/Meta-Llama-3-70B-Instruct"}'),
    ('mistral-7b',   'mistral', '7B',   'chat',      32768, 16, 0.04, 0.04,  100, '{"hf_model":"mistralai/Mistral-7B-Instruct-v0.3"}'),
    ('qwen-2.5-7b',  'qwen',    '7B',   'chat',      32768, 16, 0.04, 0.04,  100, '{"hf_model":"Qwen/Qwen2.5-7B-Instruct"}'),
    ('gemma-7b',     'gemma',   '7B',   'chat',      8192,  16, 0.03, 0.03,  100, '{"hf_model":"google/gemma-7b-it"}'),
    ('bge-large-en', 'bge',     '335M', 'embedding', 512,    2, 0.01, 0,    2000, '{"hf_model":"BAAI/bge-large-en-v1.5"}')
ON CONFLICT (name) DO NOTHING;

-- -----------------------------------------------------------------------------
-- GPU catalog: gpu_types, gpu_prices
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS gpu_types (
    id         uuid         NOT NULL DEFAULT gen_random_uuid(),
    name       text         NOT NULL,
    vram_gb    integer      NOT NULL,
    created_at timestamptz  NOT NULL DEFAULT now(),
    updated_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT gpu_types_pkey          PRIMARY KEY (id),
    CONSTRAINT gpu_types_name_key      UNIQUE (name),
    CONSTRAINT gpu_types_vram_gb_check CHECK (vram_gb > 0)
);
COMMENT ON TABLE gpu_types IS 'GPU catalog used for automatic GPU choice.';

CREATE OR REPLACE TRIGGER gpu_types_set_updated_at
    BEFORE UPDATE ON gpu_types FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS gpu_prices (
    id                     uuid           NOT NULL DEFAULT gen_random_uuid(),
    gpu_type_id            uuid           NOT NULL,
    provider               text           NOT NULL,
    on_demand_usd_per_hour numeric(10,4)  NOT NULL,
    spot_usd_per_hour      numeric(10,4),
    available              boolean        NOT NULL DEFAULT true,
    created_at             timestamptz    NOT NULL DEFAULT now(),
    updated_at             timestamptz    NOT NULL DEFAULT now(),
    CONSTRAINT gpu_prices_pkey                         PRIMARY KEY (id),
    CONSTRAINT gpu_prices_gpu_type_id_provider_key     UNIQUE (gpu_type_id, provider),
    CONSTRAINT gpu_prices_gpu_type_id_fkey             FOREIGN KEY (gpu_type_id) REFERENCES gpu_types (id) ON DELETE CASCADE,
    CONSTRAINT gpu_prices_provider_check               CHECK (provider IN ('aws', 'gcp', 'azure', 'oci', 'on-prem', 'local')),
    CONSTRAINT gpu_prices_on_demand_usd_per_hour_check CHECK (on_demand_usd_per_hour >= 0),
    CONSTRAINT gpu_prices_spot_usd_per_hour_check      CHECK (spot_usd_per_hour >= 0)
);
COMMENT ON TABLE gpu_prices IS 'Hourly on-demand and spot price of each GPU type per provider (USD).';

CREATE OR REPLACE TRIGGER gpu_prices_set_updated_at
    BEFORE UPDATE ON gpu_prices FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO gpu_types (name, vram_gb) VALUES
    ('A10G',      24),
    ('L4',        24),
    ('A100',      40),
    ('A100-80GB', 80),
    ('H100',      80)
ON CONFLICT (name) DO NOTHING;

INSERT INTO gpu_prices (gpu_type_id, provider, on_demand_usd_per_hour, spot_usd_per_hour)
SELECT g.id, p.provider, v.on_demand, v.spot
FROM (VALUES
        ('A10G',      1.20, 0.36),
        ('L4',        0.80, 0.24),
        ('A100',      4.00, 1.20),
        ('A100-80GB', 5.50, 1.65),
        ('H100',      8.00, 2.40)
     ) AS v (gpu_name, on_demand, spot)
JOIN gpu_types g ON g.name = v.gpu_name
CROSS JOIN (VALUES ('aws'), ('gcp'), ('azure')) AS p (provider)
ON CONFLICT (gpu_type_id, provider) DO NOTHING;

-- -----------------------------------------------------------------------------
-- nodes (02_deployments.sql appends cluster_name, model_name, deployment_id)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS nodes (
    id                        uuid              NOT NULL DEFAULT gen_random_uuid(),
    node_id_external          text,
    provider                  text              NOT NULL,
    region_id                 uuid,
    instance_type             text,
    gpu_type                  text,
    gpu_count                 integer           NOT NULL DEFAULT 1,
    vram_total_gb             integer,
    vram_free_gb              integer,
    model_id                  uuid,
    endpoint_url              text,
    internal_ip               text,
    spot_instance             boolean           NOT NULL DEFAULT false,
    spot_price                numeric(10,4),
    throughput_tokens_per_sec double precision  NOT NULL DEFAULT 0,
    running_requests          integer           NOT NULL DEFAULT 0,
    waiting_requests          integer           NOT NULL DEFAULT 0,
    kv_cache_usage            double precision  NOT NULL DEFAULT 0,
    status                    text              NOT NULL DEFAULT 'initializing',
    health_score              double precision  NOT NULL DEFAULT 100,
    agent_token_hash          text,
    last_heartbeat_at         timestamptz,
    metadata                  jsonb             NOT NULL DEFAULT '{}',
    created_at                timestamptz       NOT NULL DEFAULT now(),
    updated_at                timestamptz       NOT NULL DEFAULT now(),
    terminated_at             timestamptz,
    CONSTRAINT nodes_pkey               PRIMARY KEY (id),
    CONSTRAINT nodes_region_id_fkey     FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE SET NULL,
    CONSTRAINT nodes_model_id_fkey      FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE SET NULL,
    CONSTRAINT nodes_provider_check     CHECK (provider IN ('aws', 'gcp', 'azure', 'oci', 'on-prem', 'local')),
    CONSTRAINT nodes_gpu_count_check    CHECK (gpu_count >= 0),
    CONSTRAINT nodes_status_check       CHECK (status IN ('launching', 'initializing', 'active', 'draining', 'unhealthy', 'dead', 'terminated')),
    CONSTRAINT nodes_health_score_check CHECK (health_score >= 0 AND health_score <= 100)
);
COMMENT ON TABLE nodes IS 'GPU nodes serving models; load metrics come from agent heartbeats.';

CREATE INDEX IF NOT EXISTS nodes_status_idx    ON nodes (status);
CREATE INDEX IF NOT EXISTS nodes_model_id_idx  ON nodes (model_id);
CREATE INDEX IF NOT EXISTS nodes_region_id_idx ON nodes (region_id);

CREATE OR REPLACE TRIGGER nodes_set_updated_at
    BEFORE UPDATE ON nodes FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- usage_records (one row per served request; high insert volume)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS usage_records (
    id                bigserial    NOT NULL,
    request_id        text         NOT NULL,
    "timestamp"       timestamptz  NOT NULL DEFAULT now(),
    tenant_id         uuid         NOT NULL,
    environment_id    uuid,
    api_key_id        uuid,
    region_id         uuid,
    model_id          uuid,
    model_name        text         NOT NULL,
    node_id           uuid,
    prompt_tokens     integer      NOT NULL DEFAULT 0,
    completion_tokens integer      NOT NULL DEFAULT 0,
    total_tokens      integer      NOT NULL DEFAULT 0,
    cached_tokens     integer      NOT NULL DEFAULT 0,
    latency_ms        integer      NOT NULL DEFAULT 0,
    cost_microdollars bigint       NOT NULL DEFAULT 0,
    status            text         NOT NULL DEFAULT 'completed',
    billed            boolean      NOT NULL DEFAULT false,
    billing_failed    boolean      NOT NULL DEFAULT false,
    retry_count       integer      NOT NULL DEFAULT 0,
    metadata          jsonb        NOT NULL DEFAULT '{}',
    CONSTRAINT usage_records_pkey                    PRIMARY KEY (id),
    CONSTRAINT usage_records_request_id_key          UNIQUE (request_id),
    CONSTRAINT usage_records_tenant_id_fkey          FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT usage_records_environment_id_fkey     FOREIGN KEY (environment_id) REFERENCES environments (id) ON DELETE SET NULL,
    CONSTRAINT usage_records_api_key_id_fkey         FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE SET NULL,
    CONSTRAINT usage_records_region_id_fkey          FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE SET NULL,
    CONSTRAINT usage_records_model_id_fkey           FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE SET NULL,
    CONSTRAINT usage_records_node_id_fkey            FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE SET NULL,
    CONSTRAINT usage_records_prompt_tokens_check     CHECK (prompt_tokens >= 0),
    CONSTRAINT usage_records_completion_tokens_check CHECK (completion_tokens >= 0),
    CONSTRAINT usage_records_total_tokens_check      CHECK (total_tokens >= 0),
    CONSTRAINT usage_records_cached_tokens_check     CHECK (cached_tokens >= 0),
    CONSTRAINT usage_records_latency_ms_check        CHECK (latency_ms >= 0),
    CONSTRAINT usage_records_cost_microdollars_check CHECK (cost_microdollars >= 0),
    CONSTRAINT usage_records_status_check            CHECK (status IN ('completed', 'failed', 'cancelled'))
);
COMMENT ON TABLE usage_records IS 'Exactly one row per served request (request_id unique); cost in integer micro-dollars.';

CREATE INDEX IF NOT EXISTS usage_records_tenant_timestamp_idx  ON usage_records (tenant_id, "timestamp");
CREATE INDEX IF NOT EXISTS usage_records_api_key_timestamp_idx ON usage_records (api_key_id, "timestamp");
CREATE INDEX IF NOT EXISTS usage_records_timestamp_idx         ON usage_records ("timestamp");
CREATE INDEX IF NOT EXISTS usage_records_unbilled_idx          ON usage_records ("timestamp") WHERE NOT billed;

-- -----------------------------------------------------------------------------
-- usage_hourly (roll-up; one row per key even when key parts are NULL)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS usage_hourly (
    id                      bigserial         NOT NULL,
    hour                    timestamptz       NOT NULL,
    tenant_id               uuid              NOT NULL,
    environment_id          uuid,
    model_id                uuid,
    region_id               uuid,
    prompt_tokens           bigint            NOT NULL DEFAULT 0,
    completion_tokens       bigint            NOT NULL DEFAULT 0,
    total_tokens            bigint            NOT NULL DEFAULT 0,
    total_requests          bigint            NOT NULL DEFAULT 0,
    total_cost_microdollars bigint            NOT NULL DEFAULT 0,
    avg_latency_ms          double precision,
    p50_latency_ms          double precision,
    p95_latency_ms          double precision,
    p99_latency_ms          double precision,
    created_at              timestamptz       NOT NULL DEFAULT now(),
    updated_at              timestamptz       NOT NULL DEFAULT now(),
    CONSTRAINT usage_hourly_pkey                PRIMARY KEY (id),
    CONSTRAINT usage_hourly_tenant_id_fkey      FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT usage_hourly_environment_id_fkey FOREIGN KEY (environment_id) REFERENCES environments (id) ON DELETE CASCADE,
    CONSTRAINT usage_hourly_model_id_fkey       FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE CASCADE,
    CONSTRAINT usage_hourly_region_id_fkey      FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE CASCADE
);
COMMENT ON TABLE usage_hourly IS 'Hourly usage roll-up per (hour, tenant, environment, model, region); upsert on usage_hourly_key_uniq.';

-- Upsert with: ON CONFLICT (hour, tenant_id,
--   COALESCE(environment_id, '00000000-0000-0000-0000-000000000000'::uuid),
--   COALESCE(model_id,       '00000000-0000-0000-0000-000000000000'::uuid),
--   COALESCE(region_id,      '00000000-0000-0000-0000-000000000000'::uuid))
CREATE UNIQUE INDEX IF NOT EXISTS usage_hourly_key_uniq ON usage_hourly (
    hour,
    tenant_id,
    COALESCE(environment_id, '00000000-0000-0000-0000-000000000000'::uuid),
    COALESCE(model_id,       '00000000-0000-0000-0000-000000000000'::uuid),
    COALESCE(region_id,      '00000000-0000-0000-0000-000000000000'::uuid)
);
CREATE INDEX IF NOT EXISTS usage_hourly_tenant_hour_idx ON usage_hourly (tenant_id, hour);

CREATE OR REPLACE TRIGGER usage_hourly_set_updated_at
    BEFORE UPDATE ON usage_hourly FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- billing_events
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS billing_events (
    id                  uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant_id           uuid         NOT NULL,
    event_type          text         NOT NULL,
    amount_microdollars bigint       NOT NULL,
    currency            text         NOT NULL DEFAULT 'usd',
    stripe_customer_id  text,
    stripe_event_id     text,
    stripe_invoice_id   text,
    idempotency_key     text,
    description         text,
    period_start        timestamptz,
    period_end          timestamptz,
    status              text         NOT NULL DEFAULT 'pending',
    attempts            integer      NOT NULL DEFAULT 0,
    last_error          text,
    metadata            jsonb        NOT NULL DEFAULT '{}',
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    processed_at        timestamptz,
    CONSTRAINT billing_events_pkey                PRIMARY KEY (id),
    CONSTRAINT billing_events_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT billing_events_tenant_id_fkey      FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT billing_events_event_type_check    CHECK (event_type IN ('usage', 'subscription', 'credit', 'refund')),
    CONSTRAINT billing_events_status_check        CHECK (status IN ('pending', 'processed', 'failed'))
);
COMMENT ON TABLE billing_events IS 'Charges and credits to push to Stripe; idempotency_key prevents double billing.';

CREATE INDEX IF NOT EXISTS billing_events_pending_idx        ON billing_events (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS billing_events_tenant_created_idx ON billing_events (tenant_id, created_at);

CREATE OR REPLACE TRIGGER billing_events_set_updated_at
    BEFORE UPDATE ON billing_events FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- credits
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS credits (
    id                     uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant_id              uuid         NOT NULL,
    credit_type            text         NOT NULL,
    amount_microdollars    bigint       NOT NULL,
    remaining_microdollars bigint       NOT NULL,
    description            text,
    expires_at             timestamptz,
    created_at             timestamptz  NOT NULL DEFAULT now(),
    updated_at             timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT credits_pkey                         PRIMARY KEY (id),
    CONSTRAINT credits_tenant_id_fkey               FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT credits_credit_type_check            CHECK (credit_type IN ('signup_bonus', 'referral', 'promotional', 'monthly_free')),
    CONSTRAINT credits_amount_microdollars_check    CHECK (amount_microdollars >= 0),
    CONSTRAINT credits_remaining_microdollars_check CHECK (remaining_microdollars >= 0 AND remaining_microdollars <= amount_microdollars)
);
COMMENT ON TABLE credits IS 'Prepaid or promotional credit grants and what remains of each.';

CREATE INDEX IF NOT EXISTS credits_tenant_id_idx ON credits (tenant_id);

CREATE OR REPLACE TRIGGER credits_set_updated_at
    BEFORE UPDATE ON credits FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- reservations
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS reservations (
    id                          uuid         NOT NULL DEFAULT gen_random_uuid(),
    tenant_id                   uuid         NOT NULL,
    model_id                    uuid         NOT NULL,
    region_id                   uuid,
    tokens_per_second           integer      NOT NULL,
    price_microdollars_per_hour bigint       NOT NULL DEFAULT 0,
    starts_at                   timestamptz  NOT NULL,
    ends_at                     timestamptz  NOT NULL,
    status                      text         NOT NULL DEFAULT 'active',
    created_at                  timestamptz  NOT NULL DEFAULT now(),
    updated_at                  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT reservations_pkey                    PRIMARY KEY (id),
    CONSTRAINT reservations_tenant_id_fkey          FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT reservations_model_id_fkey           FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE RESTRICT,
    CONSTRAINT reservations_region_id_fkey          FOREIGN KEY (region_id) REFERENCES regions (id) ON DELETE SET NULL,
    CONSTRAINT reservations_tokens_per_second_check CHECK (tokens_per_second > 0),
    CONSTRAINT reservations_period_check            CHECK (ends_at > starts_at),
    CONSTRAINT reservations_status_check            CHECK (status IN ('pending', 'active', 'expired', 'cancelled'))
);
COMMENT ON TABLE reservations IS 'Reserved throughput (tokens/s) for a model over a time window.';

CREATE INDEX IF NOT EXISTS reservations_tenant_id_idx ON reservations (tenant_id);

CREATE OR REPLACE TRIGGER reservations_set_updated_at
    BEFORE UPDATE ON reservations FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- audit_logs
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS audit_logs (
    id            bigserial    NOT NULL,
    tenant_id     uuid,
    actor         text         NOT NULL,
    action        text         NOT NULL,
    resource_type text         NOT NULL,
    resource_id   text,
    details       jsonb        NOT NULL DEFAULT '{}',
    ip_address    text,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT audit_logs_pkey           PRIMARY KEY (id),
    CONSTRAINT audit_logs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE SET NULL
);
COMMENT ON TABLE audit_logs IS 'Append-only record of administrative and security-relevant actions.';

CREATE INDEX IF NOT EXISTS audit_logs_tenant_created_idx ON audit_logs (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS audit_logs_created_at_idx     ON audit_logs (created_at);

-- -----------------------------------------------------------------------------
-- health_checks
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS health_checks (
    id         bigserial    NOT NULL,
    node_id    uuid         NOT NULL,
    status     text         NOT NULL,
    latency_ms integer,
    error      text,
    details    jsonb        NOT NULL DEFAULT '{}',
    checked_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT health_checks_pkey         PRIMARY KEY (id),
    CONSTRAINT health_checks_node_id_fkey FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE CASCADE,
    CONSTRAINT health_checks_status_check CHECK (status IN ('healthy', 'unhealthy', 'dead'))
);
COMMENT ON TABLE health_checks IS 'Results of node health probes.';

CREATE INDEX IF NOT EXISTS health_checks_node_checked_idx ON health_checks (node_id, checked_at DESC);

-- -----------------------------------------------------------------------------
-- webhook_events (inbound; event_id unique = idempotency)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS webhook_events (
    id           uuid         NOT NULL DEFAULT gen_random_uuid(),
    provider     text         NOT NULL DEFAULT 'stripe',
    event_id     text         NOT NULL,
    event_type   text         NOT NULL,
    payload      jsonb        NOT NULL,
    processed    boolean      NOT NULL DEFAULT false,
    processed_at timestamptz,
    error        text,
    received_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT webhook_events_pkey         PRIMARY KEY (id),
    CONSTRAINT webhook_events_event_id_key UNIQUE (event_id)
);
COMMENT ON TABLE webhook_events IS 'Inbound webhooks (Stripe); the unique event_id makes redelivery harmless.';

-- -----------------------------------------------------------------------------
-- events (durable outbox of domain events)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS events (
    id              bigserial    NOT NULL,
    event_id        uuid         NOT NULL DEFAULT gen_random_uuid(),
    event_type      text         NOT NULL,
    tenant_id       uuid,
    severity        text         NOT NULL DEFAULT 'info',
    payload         jsonb        NOT NULL DEFAULT '{}',
    created_at      timestamptz  NOT NULL DEFAULT now(),
    fanned_out_at   timestamptz,
    fanout_attempts integer      NOT NULL DEFAULT 0,
    last_error      text,
    CONSTRAINT events_pkey             PRIMARY KEY (id),
    CONSTRAINT events_event_id_key     UNIQUE (event_id),
    CONSTRAINT events_tenant_id_fkey   FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE SET NULL,
    CONSTRAINT events_event_type_check CHECK (event_type ~ '^[a-z_]+\.[a-z_.]+$'),
    CONSTRAINT events_severity_check   CHECK (severity IN ('info', 'warning', 'critical'))
);
COMMENT ON TABLE events IS 'Durable outbox of domain events (e.g. tenant.created); fanned_out_at is set once deliveries exist.';

CREATE INDEX IF NOT EXISTS events_pending_fanout_idx ON events (id) WHERE fanned_out_at IS NULL;
CREATE INDEX IF NOT EXISTS events_tenant_created_idx ON events (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS events_type_created_idx   ON events (event_type, created_at);

CREATE OR REPLACE TRIGGER events_notify
    AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION notify_event();
