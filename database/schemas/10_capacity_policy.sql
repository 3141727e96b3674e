-- =============================================================================
-- 10_capacity_policy.sql — how a deployment buys its GPU capacity.
--
--   capacity_policy     on_demand  every replica on-demand;
--                       spot       spot first, on-demand after a failed spot
--                                  launch (the behaviour before this column);
--                       hedged     spot replicas spread across regions plus
--                                  spot_overprovision extra ones, a base of
--                                  on_demand_base on-demand replicas, and
--                                  on-demand fallback while ready spot
--                                  replicas are short of the target (drained
--                                  again once spot is back).
--   on_demand_base      hedged only: replicas always on-demand.
--   spot_overprovision  hedged only: spot replicas kept beyond the target.
--
-- use_spot stays (the seed's column, read by older clients): the code
-- writes it as capacity_policy <> 'on_demand', and the existing rows are
-- mapped from it here.
--
-- Idempotent (IF NOT EXISTS, constraint guards). No BEGIN/COMMIT, no psql
-- meta-commands. Requires 02_deployments.sql.
-- Reverse: database/rollback/10_capacity_policy.down.sql
-- =============================================================================

SET client_min_messages = warning;

ALTER TABLE deployments ADD COLUMN IF NOT EXISTS capacity_policy text;
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS on_demand_base integer NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS spot_overprovision integer NOT NULL DEFAULT 1;

UPDATE deployments
   SET capacity_policy = CASE WHEN use_spot THEN 'spot' ELSE 'on_demand' END
 WHERE capacity_policy IS NULL;
ALTER TABLE deployments ALTER COLUMN capacity_policy SET DEFAULT 'spot';
ALTER TABLE deployments ALTER COLUMN capacity_policy SET NOT NULL;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'deployments_capacity_policy_check') THEN
        ALTER TABLE deployments ADD CONSTRAINT deployments_capacity_policy_check
            CHECK (capacity_policy IN ('on_demand', 'spot', 'hedged'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'deployments_on_demand_base_check') THEN
        ALTER TABLE deployments ADD CONSTRAINT deployments_on_demand_base_check
            CHECK (on_demand_base >= 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'deployments_spot_overprovision_check') THEN
        ALTER TABLE deployments ADD CONSTRAINT deployments_spot_overprovision_check
            CHECK (spot_overprovision >= 0);
    END IF;
END
$$;

COMMENT ON COLUMN deployments.capacity_policy IS 'on_demand, spot (spot first, on-demand after failed spot launches) or hedged (spread spot + over-provision + on-demand base and fallback).';
COMMENT ON COLUMN deployments.on_demand_base IS 'hedged: replicas always on-demand.';
COMMENT ON COLUMN deployments.spot_overprovision IS 'hedged: spot replicas kept beyond the target.';
