//! `crosslogic nodes …`: `/admin/v1/nodes`: list, inspect, drain,
//! terminate, and read or follow a node's launch and terminate logs.

use std::io::Write;

use clap::{Args, Subcommand};
use crosslogic_core::{NodeStatus, Provider};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;
use super::{confirm, details, one_of, rows, show, text, when, ClientOpts};
use crate::output;

/// The server's page size for logs when --limit is not given.
const DEFAULT_LOG_PAGE: usize = 1000;

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: NodesCommand,
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List nodes, newest first (terminated ones only with --include-terminated or --status terminated).
    List {
        /// Only nodes in this status.
        #[arg(long, value_parser = one_of(NodeStatus::ALL, NodeStatus::as_str))]
        status: Option<NodeStatus>,
        /// Only nodes serving this model.
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Only nodes in this region code.
        #[arg(long, value_name = "CODE")]
        region: Option<String>,
        /// Only the nodes of this deployment (id).
        #[arg(long, value_name = "ID")]
        deployment: Option<Uuid>,
        /// Only nodes at this provider.
        #[arg(long, value_parser = one_of(Provider::ALL, Provider::as_str))]
        provider: Option<Provider>,
        /// Include terminated nodes.
        #[arg(long)]
        include_terminated: bool,
        /// At most this many nodes, 1 to 500 [server default: 50].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show one node with its latest health checks.
    Get {
        /// Node id.
        id: Uuid,
    },
    /// Drain a node: gateways stop sending it work and the reconciler terminates it once idle.
    Drain {
        /// Node id.
        id: Uuid,
    },
    /// Terminate a node now: it leaves routing at once and its cluster is torn down.
    ///
    /// Asks you to type the node id unless --yes is given.
    Terminate {
        /// Node id.
        id: Uuid,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Print a node's launch and terminate logs, one line each (`TIME [JOB KIND] LINE`).
    Logs {
        /// Node id.
        id: Uuid,
        /// Keep printing lines as they are written until none of the node's jobs runs (plain text only).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only lines after this cursor (printed when a page is full).
        #[arg(long, value_name = "CURSOR")]
        after: Option<u64>,
        /// Lines per page, 1 to 5000 [server default: 1000].
        #[arg(long, value_name = "N", conflicts_with = "follow")]
        limit: Option<u32>,
    },
}

pub async fn run(args: NodesArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        NodesCommand::List {
            status,
            model,
            region,
            deployment,
            provider,
            include_terminated,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s.to_string()));
            }
            if let Some(m) = model {
                query.push(("model", m));
            }
            if let Some(r) = region {
                query.push(("region", r));
            }
            if let Some(d) = deployment {
                query.push(("deployment_id", d.to_string()));
            }
            if let Some(p) = provider {
                query.push(("provider", p.to_string()));
            }
            if include_terminated {
                query.push(("include_terminated", "true".to_owned()));
            }
            if let Some(n) = limit {
                query.push(("limit", n.to_string()));
            }
            show(json, &api.get("nodes", &query).await?, list)
        }
        NodesCommand::Get { id } => show(json, &api.get(&format!("nodes/{id}"), &[]).await?, detail),
        NodesCommand::Drain { id } => {
            let n = api.post(&format!("nodes/{id}/drain"), json!({})).await?;
            show(json, &n, changed)
        }
        NodesCommand::Terminate { id, yes } => {
            if !yes {
                let n = api.get(&format!("nodes/{id}"), &[]).await?;
                let action = format!(
                    "terminate {} node {} ({} in {}) and tear its cluster down",
                    text(&n, "status", "?"),
                    text(&n, "cluster_name", "without a cluster"),
                    text(&n, "model_name", "no model"),
                    text(&n, "region_code", "no region")
                );
                confirm(&action, "the node id", &id.to_string())?;
            }
            let t = api.post(&format!("nodes/{id}/terminate"), json!({})).await?;
            show(json, &t, terminated)
        }
        NodesCommand::Logs {
            id,
            follow,
            after,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(a) = after {
                query.push(("after", a.to_string()));
            }
            if follow {
                if json {
                    anyhow::bail!("--follow prints plain text as it arrives; leave out --json");
                }
                query.push(("follow", "true".to_owned()));
                return copy_stream(&api, &format!("nodes/{id}/logs"), &query).await;
            }
            if let Some(n) = limit {
                query.push(("limit", n.to_string()));
            }
            let page = api.get(&format!("nodes/{id}/logs"), &query).await?;
            let full = limit.map_or(DEFAULT_LOG_PAGE, |n| n as usize);
            show(json, &page, |p| logs(p, full))
        }
    }
}

/// Copies a streamed text body to stdout as it arrives; a closed stdout
/// (e.g. `| head`) ends the copy quietly.
async fn copy_stream(api: &Client, path: &str, query: &[(&str, String)]) -> anyhow::Result<()> {
    let mut body = api.stream(path, query).await?;
    while let Some(chunk) = body.chunk().await? {
        let mut out = std::io::stdout();
        if out.write_all(chunk.as_ref()).and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// A remark about the output, on stderr so piped lines stay clean.
fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A page of log lines as `TIME [KIND] LINE`, the format of `--follow`.
fn logs(page: &Value, full: usize) {
    let jobs = page["jobs"].as_array().map(Vec::as_slice).unwrap_or_default();
    let lines = page["lines"].as_array().map(Vec::as_slice).unwrap_or_default();
    for l in lines {
        let kind = jobs
            .iter()
            .find(|j| j["id"] == l["job_id"])
            .and_then(|j| j["kind"].as_str())
            .unwrap_or("job");
        let at = l["at"].as_str().map_or_else(String::new, |raw| {
            chrono::DateTime::parse_from_rfc3339(raw).map_or_else(
                |_| raw.to_owned(),
                |t| {
                    t.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string()
                },
            )
        });
        output::line(&format!("{at} [{kind}] {}", text(l, "line", "")));
    }
    if lines.is_empty() {
        note(if jobs.is_empty() {
            "no log lines: the node has no launch or terminate jobs"
        } else {
            "no log lines"
        });
    } else if lines.len() >= full {
        note(&format!("more lines: add --after {}", text(page, "next_cursor", "?")));
    }
    if page["running"] == true {
        note("a job is still running: add --follow to keep reading");
    }
}

/// One line after a status change.
fn changed(n: &Value) {
    output::line(&format!("node {} is {}", text(n, "id", "?"), text(n, "status", "?")));
}

/// The answer of a termination.
fn terminated(t: &Value) {
    let node = &t["node"];
    let id = text(node, "id", "?");
    match t["job_id"].as_str() {
        Some(job) => output::line(&format!(
            "node {id} is {}; job {job} is tearing its cluster down (crosslogic nodes logs {id} --follow)",
            text(node, "status", "?")
        )),
        None => changed(node),
    }
}

/// `1xA10G`, or `-` without a GPU type.
fn gpu(n: &Value) -> String {
    match n["gpu_type"].as_str() {
        Some(kind) => format!("{}x{kind}", text(n, "gpu_count", "?")),
        None => "-".to_owned(),
    }
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|n| {
            vec![
                text(n, "id", "-"),
                text(n, "status", "-"),
                text(n, "provider", "-"),
                text(n, "region_code", "-"),
                gpu(n),
                text(n, "model_name", "-"),
                text(n, "spot_instance", "-"),
                text(n, "endpoint_url", "-"),
                when(n, "last_heartbeat_at", "never"),
                when(n, "created_at", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no nodes");
        return;
    }
    output::table(
        &[
            "id",
            "status",
            "provider",
            "region",
            "gpu",
            "model",
            "spot",
            "endpoint",
            "heartbeat",
            "created",
        ],
        &rows,
    );
}

fn detail(n: &Value) {
    details(&[
        ("id", text(n, "id", "-")),
        ("status", text(n, "status", "-")),
        ("cluster", text(n, "cluster_name", "-")),
        ("external id", text(n, "node_id_external", "-")),
        ("provider", text(n, "provider", "-")),
        ("region", text(n, "region_code", "-")),
        ("instance type", text(n, "instance_type", "-")),
        ("gpu", gpu(n)),
        ("vram total (GB)", text(n, "vram_total_gb", "-")),
        ("vram free (GB)", text(n, "vram_free_gb", "-")),
        ("model", text(n, "model_name", "-")),
        ("deployment", text(n, "deployment_id", "-")),
        ("endpoint", text(n, "endpoint_url", "-")),
        ("internal ip", text(n, "internal_ip", "-")),
        ("spot", text(n, "spot_instance", "-")),
        ("health score", text(n, "health_score", "-")),
        ("running requests", text(n, "running_requests", "-")),
        ("waiting requests", text(n, "waiting_requests", "-")),
        ("kv cache usage", text(n, "kv_cache_usage", "-")),
        ("tokens/s", text(n, "throughput_tokens_per_sec", "-")),
        ("last heartbeat", when(n, "last_heartbeat_at", "never")),
        ("created", when(n, "created_at", "-")),
        ("updated", when(n, "updated_at", "-")),
        ("terminated", when(n, "terminated_at", "-")),
    ]);
    let checks: Vec<Vec<String>> = n["health_checks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            vec![
                when(c, "checked_at", "-"),
                text(c, "status", "-"),
                text(c, "latency_ms", "-"),
                text(c, "error", "-"),
            ]
        })
        .collect();
    output::line("");
    if checks.is_empty() {
        output::line("no health checks yet");
    } else {
        output::line("latest health checks:");
        output::table(&["checked", "status", "latency_ms", "error"], &checks);
    }
}
