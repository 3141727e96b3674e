-- =============================================================================
-- 10_capacity_policy.down.sql — reverses database/schemas/10_capacity_policy.sql
-- (use_spot keeps what the policies meant: hedged deployments stay spot).
-- Idempotent (IF EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

ALTER TABLE deployments DROP CONSTRAINT IF EXISTS deployments_capacity_policy_check;
ALTER TABLE deployments DROP CONSTRAINT IF EXISTS deployments_on_demand_base_check;
ALTER TABLE deployments DROP CONSTRAINT IF EXISTS deployments_spot_overprovision_check;
ALTER TABLE deployments DROP COLUMN IF EXISTS spot_overprovision;
ALTER TABLE deployments DROP COLUMN IF EXISTS on_demand_base;
ALTER TABLE deployments DROP COLUMN IF EXISTS capacity_policy;
