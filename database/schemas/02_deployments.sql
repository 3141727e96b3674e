-- =============================================================================
-- 02_deployments.sql — managed model deployments (1 cluster = 1 node)
--
-- Idempotent; no BEGIN/COMMIT, no psql meta-commands (see 01_core_tables.sql).
-- Requires 01_core_tables.sql (models, regions, nodes, set_updated_at()).
-- Reverse: database/rollback/02_deployments.down.sql
-- =============================================================================

SET client_min_messages = warning;

-- -----------------------------------------------------------------------------
-- deployments
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS deployments (
    id               uuid         NOT NULL DEFAULT gen_random_uuid(),
    name             text         NOT NULL,
    model_name       text         NOT NULL,
    min_replicas     integer      NOT NULL DEFAULT 2,
    max_replicas     integer      NOT NULL DEFAULT 10,
    current_replicas integer      NOT NULL DEFAULT 0,
    strategy         text         NOT NULL DEFAULT 'spread',
    provider         text,
    region           text,
    gpu_type         text         NOT NULL DEFAULT 'auto',
    gpu_count        integer,
    use_spot         boolean      NOT NULL DEFAULT true,
    status           text         NOT NULL DEFAULT 'active',
    metadata         jsonb        NOT NULL DEFAULT '{}',
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    CONSTRAINT deployments_pkey                   PRIMARY KEY (id),
    CONSTRAINT deployments_name_key               UNIQUE (name),
    CONSTRAINT deployments_model_name_fkey        FOREIGN KEY (model_name) REFERENCES models (name) ON UPDATE CASCADE,
    CONSTRAINT deployments_region_fkey            FOREIGN KEY (region) REFERENCES regions (code) ON UPDATE CASCADE,
    CONSTRAINT deployments_min_replicas_check     CHECK (min_replicas >= 0),
    CONSTRAINT deployments_max_replicas_check     CHECK (max_replicas > 0),
    CONSTRAINT deployments_replicas_bounds        CHECK (min_replicas <= max_replicas),
    CONSTRAINT deployments_current_replicas_check CHECK (current_replicas >= 0),
    CONSTRAINT deployments_strategy_check         CHECK (strategy IN ('spread', 'packed')),
    CONSTRAINT deployments_provider_check         CHECK (provider IN ('aws', 'gcp', 'azure', 'oci', 'on-prem', 'local')),
    CONSTRAINT deployments_gpu_count_check        CHECK (gpu_count > 0),
    CONSTRAINT deployments_status_check           CHECK (status IN ('active', 'paused', 'deleted'))
);
COMMENT ON TABLE deployments IS 'Managed model deployments auto-scaled between min_replicas and max_replicas; gpu_type ''auto'' and NULL gpu_count/provider/region mean automatic choice.';

CREATE INDEX IF NOT EXISTS deployments_status_idx ON deployments (status);

CREATE OR REPLACE TRIGGER deployments_set_updated_at
    BEFORE UPDATE ON deployments FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- nodes: columns for the 1:1 cluster-node architecture (appended at the end)
-- -----------------------------------------------------------------------------
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS cluster_name  text;
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS model_name    text;
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS deployment_id uuid;

-- Constraints are added separately (not inline in ADD COLUMN IF NOT EXISTS),
-- so a second run never creates a duplicate on any PostgreSQL version.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'nodes'::regclass AND conname = 'nodes_cluster_name_key') THEN
        ALTER TABLE nodes ADD CONSTRAINT nodes_cluster_name_key UNIQUE (cluster_name);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'nodes'::regclass AND conname = 'nodes_deployment_id_fkey') THEN
        ALTER TABLE nodes ADD CONSTRAINT nodes_deployment_id_fkey
            FOREIGN KEY (deployment_id) REFERENCES deployments (id) ON DELETE SET NULL;
    END IF;
END;
$$;

CREATE INDEX IF NOT EXISTS nodes_deployment_id_idx ON nodes (deployment_id);
CREATE INDEX IF NOT EXISTS nodes_model_name_idx    ON nodes (model_name);

-- -----------------------------------------------------------------------------
-- deployment_nodes (membership of nodes in deployments)
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS deployment_nodes (
    deployment_id uuid         NOT NULL,
    node_id       uuid         NOT NULL,
    status        text         NOT NULL DEFAULT 'healthy',
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT deployment_nodes_pkey               PRIMARY KEY (deployment_id, node_id),
    CONSTRAINT deployment_nodes_deployment_id_fkey FOREIGN KEY (deployment_id) REFERENCES deployments (id) ON DELETE CASCADE,
    CONSTRAINT deployment_nodes_node_id_fkey       FOREIGN KEY (node_id) REFERENCES nodes (id) ON DELETE CASCADE,
    CONSTRAINT deployment_nodes_status_check       CHECK (status IN ('healthy', 'unhealthy', 'draining'))
);
COMMENT ON TABLE deployment_nodes IS 'Which nodes belong to which deployment, with their membership health.';

CREATE INDEX IF NOT EXISTS deployment_nodes_node_id_idx ON deployment_nodes (node_id);

CREATE OR REPLACE TRIGGER deployment_nodes_set_updated_at
    BEFORE UPDATE ON deployment_nodes FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- -----------------------------------------------------------------------------
-- An example deployment, so the seed guide's "Verify Installation" step
-- (`SELECT * FROM deployments LIMIT 1;  -- Test sample data`) shows a row.
-- It cannot cost money: paused (the reconciler leaves paused deployments
-- alone), minimum 0 replicas; nothing launches until an operator resumes it
-- (`crosslogic deployments resume ID`) or deletes it. A changed example is
-- left as the operator left it; a deleted one returns only if this file is
-- applied again (`db migrate --repair`). Databases that applied this file
-- before it carried the row get it from 08_example_deployment.sql.
-- -----------------------------------------------------------------------------
INSERT INTO deployments (name, model_name, min_replicas, max_replicas, strategy, gpu_type, use_spot, status, metadata)
VALUES ('example-llama-3-8b-paused', 'llama-3-8b', 0, 2, 'spread', 'auto', true, 'paused',
        '{"example": true, "note": "An example deployment, paused: nothing launches until an operator resumes it (crosslogic deployments resume ID) or deletes it."}')
ON CONFLICT (name) DO NOTHING;
