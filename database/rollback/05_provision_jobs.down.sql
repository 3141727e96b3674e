-- =============================================================================
-- 05_provision_jobs.down.sql — reverses database/schemas/05_provision_jobs.sql.
-- Idempotent (IF EXISTS). No BEGIN/COMMIT, no psql meta-commands.
-- =============================================================================

SET client_min_messages = warning;

DROP TABLE IF EXISTS provision_job_lines;
DROP TABLE IF EXISTS provision_jobs;
