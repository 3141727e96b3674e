-- =============================================================================
-- 01_core_tables.down.sql — reverses database/schemas/01_core_tables.sql
--
-- Drops every table and function 01 created, dependents first. Roll back
-- 03 and 02 before this one: without CASCADE, a table still referenced by a
-- later migration makes this script fail instead of silently breaking it.
-- Idempotent (IF EXISTS). Leaves schema_migrations to the caller.
-- No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

-- Outbox and logs
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS webhook_events;
DROP TABLE IF EXISTS health_checks;
DROP TABLE IF EXISTS audit_logs;

-- Billing
DROP TABLE IF EXISTS reservations;
DROP TABLE IF EXISTS credits;
DROP TABLE IF EXISTS billing_events;

-- Usage
DROP TABLE IF EXISTS usage_hourly;
DROP TABLE IF EXISTS usage_records;

-- Fleet and catalog
DROP TABLE IF EXISTS nodes;
DROP TABLE IF EXISTS gpu_prices;
DROP TABLE IF EXISTS gpu_types;
DROP TABLE IF EXISTS models;

-- Tenancy
DROP TABLE IF EXISTS api_keys;
DROP TABLE IF EXISTS environments;
DROP TABLE IF EXISTS tenants;
DROP TABLE IF EXISTS regions;

-- Shared functions
DROP FUNCTION IF EXISTS notify_event();
DROP FUNCTION IF EXISTS set_updated_at();
