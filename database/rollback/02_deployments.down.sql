-- =============================================================================
-- 02_deployments.down.sql — reverses database/schemas/02_deployments.sql
--
-- Drops deployment_nodes, deployments and the columns 02 added to nodes
-- (cluster_name, model_name, deployment_id — their indexes and constraints go
-- with them). Idempotent (IF EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP TABLE IF EXISTS deployment_nodes;

ALTER TABLE IF EXISTS nodes
    DROP COLUMN IF EXISTS deployment_id,
    DROP COLUMN IF EXISTS model_name,
    DROP COLUMN IF EXISTS cluster_name;

DROP TABLE IF EXISTS deployments;
