-- =============================================================================
-- 08_example_deployment.down.sql — reverses
-- database/schemas/08_example_deployment.sql: removes the example deployment
-- (only while it is still the example; one an operator resumed is kept).
-- Idempotent. No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DELETE FROM deployments
 WHERE name = 'example-llama-3-8b-paused' AND status = 'paused' AND metadata->>'example' = 'true'
   AND NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.deployment_id = deployments.id);
