-- =============================================================================
-- 08_example_deployment.sql — one example deployment, so the seed guide's
-- "Verify Installation" step (`SELECT * FROM deployments LIMIT 1;  -- Test
-- sample data`) shows a row.
--
-- It cannot cost money: it is paused (the reconciler leaves paused
-- deployments alone) with a minimum of 0 replicas; nothing launches until an
-- operator resumes it (`crosslogic deployments resume ID`), or deletes it.
-- It lives in its own file rather than in 02_deployments.sql because applied
-- files must not change (their checksums are recorded).
--
-- Idempotent: a deleted or changed example is left as the operator left it.
-- No BEGIN/COMMIT, no psql meta-commands.
-- Requires 01_core_tables.sql and 02_deployments.sql.
-- Reverse: database/rollback/08_example_deployment.down.sql
-- =============================================================================

SET client_min_messages = warning;

INSERT INTO deployments (name, model_name, min_replicas, max_replicas, strategy, gpu_type, use_spot, status, metadata)
VALUES ('example-llama-3-8b-paused', 'llama-3-8b', 0, 2, 'spread', 'auto', true, 'paused',
        '{"example": true, "note": "An example deployment, paused: nothing launches until an operator resumes it (crosslogic deployments resume ID) or deletes it."}')
ON CONFLICT (name) DO NOTHING;
