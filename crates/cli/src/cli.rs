//! Command-line grammar.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// CrossLogic: the control plane of an LLM inference cloud.
///
/// Configuration comes from environment variables (see `crosslogic config
/// check`); with no DATABASE_URL and no DB_HOST a private PostgreSQL is
/// started from the local installation in the data directory.
#[derive(Debug, Parser)]
#[command(name = "crosslogic", version, propagate_version = true)]
pub struct Cli {
    /// Data directory for the embedded database and local state
    /// [env: CROSSLOGIC_DATA_DIR, default: ./.crosslogic].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform: HTTP server (/healthz, /readyz) and background workers.
    ///
    /// Migrates the database first. Stops gracefully on SIGINT/SIGTERM:
    /// readiness turns 503, in-flight requests finish (SHUTDOWN_TIMEOUT),
    /// background tasks stop, then the database closes.
    Serve(ServeArgs),
    /// Database administration: migrations, status, backup, maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// SkyPilot integration: its state database in PostgreSQL.
    #[command(subcommand)]
    Skypilot(SkypilotCommand),
    /// The JuiceFS model store.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// `tenants`, `environments`, `keys`: clients of a running server's admin API.
    #[command(flatten)]
    Admin(crate::commands::admin_client::AdminCommand),
    /// Run the node agent next to a GPU node's engine: waits for the
    /// engine, registers the node's endpoint with the control plane,
    /// heartbeats with the engine's load, watches for spot preemption and
    /// deregisters on SIGTERM. The credential comes from CROSSLOGIC_NODE_TOKEN
    /// (a per-node credential, or the operator's registration token for
    /// hand-added on-prem nodes).
    NodeAgent(NodeAgentArgs),
    /// Capacity planning: replay load and spot-capacity traces through the
    /// reconciler's decisions and compare capacity policies by cost and
    /// success rate.
    #[command(subcommand)]
    Fleet(crate::commands::fleet::FleetCommand),
    /// Run the vLLM-compatible engine simulator (a stand-in GPU node for
    /// development and tests). Flags mirror `vllm serve` where they overlap.
    EngineSim(EngineSimArgs),
}

#[derive(Debug, Args)]
pub struct EngineSimArgs {
    /// Model id clients must send (like vLLM's --served-model-name).
    #[arg(long, visible_alias = "model", default_value = "llama-3-8b")]
    pub served_model_name: String,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to bind (0 = any free port; the bound address is logged).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Context length: longer requests get vLLM's 400.
    #[arg(long, default_value_t = 8192)]
    pub max_model_len: u32,
    /// Requests generating at once; more wait in a queue.
    #[arg(long, default_value_t = 256)]
    pub max_num_seqs: usize,
    /// Time to first token, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub ttft_ms: u64,
    /// Inter-token latency, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub itl_ms: u64,
    /// Tokens generated per request (capped by its max_tokens).
    #[arg(long, default_value_t = 16)]
    pub output_tokens: u32,
    /// Fraction of requests answered with 500 (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Seed of the failure-injection random generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Always end streams with the usage chunk (vLLM --enable-force-include-usage).
    #[arg(long)]
    pub enable_force_include_usage: bool,
    /// Dimension of embedding vectors.
    #[arg(long, default_value_t = 384)]
    pub embedding_dim: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [env: LISTEN_ADDR, default: 127.0.0.1:8080].
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// What this process does: `all` (everything, the default); `gateway`
    /// (the OpenAI-compatible `/v1` API with its metering and caches, and the
    /// ops routes — run as many as traffic needs, behind any HTTP load
    /// balancer); `control` (the admin, node-agent and webhook APIs, the
    /// console, and every background worker: health, reconciler,
    /// notifications, billing).
    #[arg(long, value_name = "ROLE", default_value = "all", value_parser = ["all", "gateway", "control"])]
    pub role: String,
    /// Do not apply pending migrations at start.
    #[arg(long)]
    pub skip_migrations: bool,
    /// Launch deployment nodes with this provisioner: `local` runs each node
    /// (engine + node agent) as processes on this machine; `skypilot` launches
    /// cloud clusters through the `sky` CLI, or the SkyPilot API server when
    /// SKYPILOT_API_SERVER_URL is set (needs CONTROL_PLANE_URL). Unset: the
    /// reconciler does not run here.
    #[arg(long, value_name = "KIND", value_parser = ["local", "skypilot"])]
    pub provisioner: Option<String>,
    /// Engine command for `local` nodes, with {model} and {port} placeholders
    /// (e.g. "vllm serve {model} --port {port}"); default: the built-in simulator.
    #[arg(long, value_name = "COMMAND")]
    pub engine_command: Option<String>,
    /// Where the `local` provisioner records its nodes [default:
    /// CROSSLOGIC_DATA_DIR/nodes]. Control-plane replicas on one machine
    /// share it, so each sees (and adopts) what any of them launched.
    #[arg(long, value_name = "DIR")]
    pub nodes_dir: Option<std::path::PathBuf>,
    /// Extra argument for every `local` node agent; repeat for several (e.g.
    /// `--node-agent-arg=--cloud --node-agent-arg=aws --node-agent-arg=--metadata-url
    /// --node-agent-arg=http://127.0.0.1:9999` to simulate spot notices).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub node_agent_arg: Vec<String>,
    /// Demo mode (what `scripts/serve.sh` runs): on an empty database, create
    /// a demo tenant with a key and deployments of a chat and an embedding
    /// model on local simulator nodes, keep an operator token in
    /// CROSSLOGIC_DATA_DIR/admin-token (unless ADMIN_API_TOKEN is set), and
    /// print how to call the API once the nodes serve. Implies
    /// `--provisioner local`; refused on a database holding anything else.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the platform's database owned by its user (the seed's step 1,
    /// done so that it works on PostgreSQL 15 and later too).
    ///
    /// Connects as a superuser (--admin-url), creates the login role unless
    /// it exists (password from the variable named by --password-env), and
    /// creates the database owned by it — or makes it the owner of an
    /// existing one, which is what lets it create tables in schema public
    /// (a database-level GRANT no longer does since PostgreSQL 15).
    Create {
        /// The user that will own the database and connect as the platform.
        #[arg(long, value_name = "ROLE")]
        owner: String,
        /// The database to create.
        #[arg(long, value_name = "NAME", default_value = "crosslogic_iaas")]
        name: String,
        /// A superuser connection, e.g. postgresql://postgres@localhost:5432/postgres.
        #[arg(long, value_name = "URL", env = "DATABASE_ADMIN_URL", hide_env_values = true)]
        admin_url: String,
        /// The environment variable holding the new role's password (never a flag).
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Apply pending migrations (database/schemas/*.sql, embedded in the binary).
    ///
    /// Safe to run from several processes at once (advisory lock). Fails,
    /// naming the file, if an applied migration file has changed since, or,
    /// naming the objects, if the database lacks what its applied
    /// migrations created (schema drift).
    Migrate {
        /// Repair schema drift first: re-apply the affected (idempotent)
        /// migration files, then restore indexes, constraints and triggers
        /// from their recorded definitions.
        #[arg(long)]
        repair: bool,
    },
    /// Show applied and pending migrations, tables with row counts, and the database size.
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Reverse migrations above version N (newest first), e.g. `--to 1`
    /// drops deployments, deployment_nodes and the columns 02 added to nodes.
    ///
    /// Destroys data in the dropped tables: asks you to type the database
    /// name unless --yes is given.
    Rollback {
        /// Keep migrations up to and including this version (0 = drop everything).
        #[arg(long, value_name = "N")]
        to: i32,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Write a SQL backup with pg_dump (gzip-compressed when FILE ends in .gz).
    Backup {
        /// Output file, e.g. backup_20250119.sql.gz.
        file: PathBuf,
        /// Database on the same server to back up (e.g. skypilot_state); default: the platform database.
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
    },
    /// Restore a backup made by `db backup` (plain or .gz) with psql, in one transaction.
    ///
    /// Replaces the objects in the backup: asks for confirmation unless --yes.
    Restore {
        /// Backup file (.sql or .sql.gz).
        file: PathBuf,
        /// Database on the same server to restore into (created if missing); default: the platform database.
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Run VACUUM ANALYZE on the whole database.
    Vacuum,
    /// Table sizes, index usage and the slowest queries (pg_stat_statements).
    Stats {
        /// How many slow queries to list.
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values, secrets redacted.
    Check,
}

#[derive(Debug, Args)]
pub struct NodeAgentArgs {
    /// Control plane base URL.
    #[arg(long, env = "CROSSLOGIC_CONTROL_URL")]
    pub control_url: String,
    /// Where the engine listens on this machine (health and metrics).
    #[arg(long, env = "CROSSLOGIC_ENGINE_URL", default_value = "http://127.0.0.1:8000")]
    pub engine_url: String,
    /// Endpoint the gateways should route to (this node's reachable address).
    #[arg(long, env = "CROSSLOGIC_ADVERTISE_URL")]
    pub advertise_url: String,
    /// This node's id, given at launch (absent for on-prem registration).
    #[arg(long, env = "CROSSLOGIC_NODE_ID")]
    pub node_id: Option<uuid::Uuid>,
    /// Served model (on-prem registration; default: asked from the engine).
    #[arg(long, env = "CROSSLOGIC_MODEL")]
    pub model: Option<String>,
    /// Region code (on-prem registration).
    #[arg(long, env = "CROSSLOGIC_REGION")]
    pub region: Option<String>,
    /// GPU type (on-prem registration).
    #[arg(long)]
    pub gpu_type: Option<String>,
    /// GPU count (on-prem registration).
    #[arg(long)]
    pub gpu_count: Option<u32>,
    /// This node's internal IP, recorded for operators.
    #[arg(long)]
    pub internal_ip: Option<String>,
    /// The cloud's instance id, recorded for operators.
    #[arg(long)]
    pub external_id: Option<String>,
    /// Watch this cloud's spot preemption notice: aws, gcp or azure.
    #[arg(long, env = "CROSSLOGIC_CLOUD")]
    pub cloud: Option<String>,
    /// Metadata service base URL (default: the cloud's own).
    #[arg(long)]
    pub metadata_url: Option<String>,
    /// How long to wait for the engine to become healthy (model loading).
    #[arg(long, default_value = "10m", value_parser = parse_duration_arg)]
    pub engine_start_timeout: std::time::Duration,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crosslogic_config::parse_duration(s)
}

#[derive(Debug, Subcommand)]
pub enum SkypilotCommand {
    /// Create SkyPilot's state database on the platform's PostgreSQL, grant
    /// access, write SkyPilot's config (`db: postgresql://…`) and verify it.
    ///
    /// SkyPilot reads `db:` from ~/.sky/config.yaml (or the environment
    /// variable SKYPILOT_DB_CONNECTION_URI); when `db` is set no other key may
    /// be in that file, so an existing file with other settings is left alone
    /// and the environment variable is suggested instead.
    SetupState {
        /// Name of the state database.
        #[arg(long, default_value = "skypilot_state")]
        database: String,
        /// SkyPilot config file to write [default: ~/.sky/config.yaml].
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Also grant all privileges to this role (e.g. the role SkyPilot uses).
        #[arg(long, value_name = "ROLE")]
        grant_to: Option<String>,
        /// Replace a different `db:` already in the config file.
        #[arg(long)]
        force: bool,
        /// The `sky` of the SkyPilot installation to check and verify with
        /// [default: `sky` on PATH].
        #[arg(long, value_name = "PATH")]
        sky: Option<PathBuf>,
        /// Only set up the database and the config; skip checking SkyPilot
        /// and running `sky status`.
        #[arg(long)]
        no_verify: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Verify JUICEFS_REDIS_URL: Redis answers and holds a formatted JuiceFS
    /// volume; says what to run if not.
    Check,
}
