-- =============================================================================
-- 05_provision_jobs.sql — background launch/terminate jobs and their logs.
--
-- Launching a GPU node takes minutes (`sky launch` boots a VM, installs the
-- engine, loads weights), so the control plane runs it as a background job
-- and records its progress here, line by line: operators stream a node's
-- launch log through the admin API while it runs, from any control-plane
-- replica, and read it after the fact.
--
-- Idempotent. No BEGIN/COMMIT, no psql meta-commands.
-- Requires 01_core_tables.sql (nodes, set_updated_at()).
-- Reverse: database/rollback/05_provision_jobs.down.sql
-- =============================================================================

SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS provision_jobs (
    id            uuid         NOT NULL DEFAULT gen_random_uuid(),
    node_id       uuid,
    cluster_name  text         NOT NULL,
    kind          text         NOT NULL,
    status        text         NOT NULL DEFAULT 'running',
    error         text,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CONSTRAINT provision_jobs_pkey          PRIMARY KEY (id),
    CONSTRAINT provision_jobs_node_id_fkey  FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE CASCADE,
    CONSTRAINT provision_jobs_kind_check    CHECK (kind IN ('launch', 'terminate')),
    CONSTRAINT provision_jobs_status_check  CHECK (status IN ('running', 'succeeded', 'failed'))
);
COMMENT ON TABLE provision_jobs IS 'Background launch/terminate jobs of the provisioners; progress in provision_job_lines.';

CREATE INDEX IF NOT EXISTS provision_jobs_node_idx ON provision_jobs (node_id, created_at);
CREATE INDEX IF NOT EXISTS provision_jobs_running_idx ON provision_jobs (status) WHERE status = 'running';

CREATE OR REPLACE TRIGGER provision_jobs_set_updated_at
    BEFORE UPDATE ON provision_jobs FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS provision_job_lines (
    id       bigserial    NOT NULL,
    job_id   uuid         NOT NULL,
    at       timestamptz  NOT NULL DEFAULT now(),
    line     text         NOT NULL,
    CONSTRAINT provision_job_lines_pkey         PRIMARY KEY (id),
    CONSTRAINT provision_job_lines_job_id_fkey  FOREIGN KEY (job_id) REFERENCES provision_jobs (id) ON DELETE CASCADE
);
COMMENT ON TABLE provision_job_lines IS 'Output of provision jobs, one row per line; id orders lines and is the follow cursor.';

CREATE INDEX IF NOT EXISTS provision_job_lines_job_idx ON provision_job_lines (job_id, id);
