//! `crosslogic deployments …`: `/admin/v1/deployments`.

use clap::{Args, Subcommand};
use crosslogic_core::{CapacityPolicy, DeploymentStatus, DeploymentStrategy, Provider};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;
use super::models::json_object;
use super::{compact, confirm, details, one_of, require_change, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: DeploymentsCommand,
}

#[derive(Debug, Subcommand)]
pub enum DeploymentsCommand {
    /// Create a deployment: a model served by --min..=--max replicas, which the
    /// reconciler launches, scales and replaces.
    Create {
        /// 1 to 63 of a-z, 0-9 and '-'; unique, also against deleted deployments.
        #[arg(long)]
        name: String,
        /// A catalog model that is not deprecated.
        #[arg(long, value_name = "NAME")]
        model: String,
        /// Fewest replicas, 0 to 1000 [server default: 2, or --max if smaller].
        #[arg(long, value_name = "N")]
        min: Option<u32>,
        /// Most replicas, 1 to 1000 [server default: 10, or --min if larger].
        #[arg(long, value_name = "N")]
        max: Option<u32>,
        /// How replicas are placed across regions [server default: spread].
        #[arg(long, value_parser = one_of(DeploymentStrategy::ALL, DeploymentStrategy::as_str))]
        strategy: Option<DeploymentStrategy>,
        /// Only this provider (default: any).
        #[arg(long, value_parser = one_of(Provider::ALL, Provider::as_str))]
        provider: Option<Provider>,
        /// Only this region code (default: any).
        #[arg(long, value_name = "CODE")]
        region: Option<String>,
        /// `auto` or a GPU type of the catalog [server default: auto].
        #[arg(long, value_name = "GPU")]
        gpu_type: Option<String>,
        /// GPUs per node, 1 to 8 (default: the fewest that fit the model).
        #[arg(long, value_name = "N")]
        gpu_count: Option<u32>,
        /// On-demand only (the same as --capacity-policy on_demand).
        #[arg(long, conflicts_with = "capacity_policy")]
        no_spot: bool,
        /// How replicas buy capacity: on_demand, spot (spot first, on-demand
        /// after failed spot launches) or hedged (spot spread over regions with
        /// over-provision, an on-demand base, on-demand fallback) [server default: spot].
        #[arg(long, value_parser = one_of(CapacityPolicy::ALL, CapacityPolicy::as_str))]
        capacity_policy: Option<CapacityPolicy>,
        /// hedged: replicas always on-demand [server default: 0].
        #[arg(long, value_name = "N")]
        on_demand_base: Option<u32>,
        /// hedged: spot replicas kept beyond the target [server default: 1].
        #[arg(long, value_name = "N")]
        spot_overprovision: Option<u32>,
        /// Free-form JSON object [default: {}].
        #[arg(long, value_name = "JSON", value_parser = json_object)]
        metadata: Option<Value>,
    },
    /// List deployments by name (deleted ones only with --status deleted).
    List {
        /// Only deployments in this status.
        #[arg(long, value_parser = one_of(DeploymentStatus::ALL, DeploymentStatus::as_str))]
        status: Option<DeploymentStatus>,
    },
    /// Show one deployment.
    Get {
        /// Deployment id.
        id: Uuid,
    },
    /// Change a deployment's bounds, strategy, GPU type or spot use; only the given fields change.
    Update {
        /// Deployment id.
        id: Uuid,
        /// Fewest replicas, 0 to 1000.
        #[arg(long, value_name = "N")]
        min: Option<u32>,
        /// Most replicas, 1 to 1000.
        #[arg(long, value_name = "N")]
        max: Option<u32>,
        /// How replicas are placed across regions.
        #[arg(long, value_parser = one_of(DeploymentStrategy::ALL, DeploymentStrategy::as_str))]
        strategy: Option<DeploymentStrategy>,
        /// `auto` or a GPU type of the catalog.
        #[arg(long, value_name = "GPU")]
        gpu_type: Option<String>,
        /// Use spot instances first (on-demand fallback).
        #[arg(long, conflicts_with = "no_spot")]
        spot: bool,
        /// On-demand instances only.
        #[arg(long, conflicts_with = "capacity_policy")]
        no_spot: bool,
        /// on_demand, spot or hedged.
        #[arg(long, value_parser = one_of(CapacityPolicy::ALL, CapacityPolicy::as_str))]
        capacity_policy: Option<CapacityPolicy>,
        /// hedged: replicas always on-demand.
        #[arg(long, value_name = "N")]
        on_demand_base: Option<u32>,
        /// hedged: spot replicas kept beyond the target.
        #[arg(long, value_name = "N")]
        spot_overprovision: Option<u32>,
    },
    /// Pause a deployment: the reconciler stops scaling and replacing its nodes until `resume`.
    Pause {
        /// Deployment id.
        id: Uuid,
    },
    /// Resume a paused deployment.
    Resume {
        /// Deployment id.
        id: Uuid,
    },
    /// Delete a deployment for good (its nodes are drained and terminated; the name stays taken).
    ///
    /// Asks you to type the deployment id unless --yes is given.
    Delete {
        /// Deployment id.
        id: Uuid,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: DeploymentsArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        DeploymentsCommand::Create {
            name,
            model,
            min,
            max,
            strategy,
            provider,
            region,
            gpu_type,
            gpu_count,
            no_spot,
            capacity_policy,
            on_demand_base,
            spot_overprovision,
            metadata,
        } => {
            let body = compact(json!({
                "name": name,
                "model_name": model,
                "min_replicas": min,
                "max_replicas": max,
                "strategy": strategy,
                "provider": provider,
                "region": region,
                "gpu_type": gpu_type,
                "gpu_count": gpu_count,
                "use_spot": no_spot.then_some(false),
                "capacity_policy": capacity_policy,
                "on_demand_base": on_demand_base,
                "spot_overprovision": spot_overprovision,
                "metadata": metadata,
            }));
            show(json, &api.post("deployments", body).await?, detail)
        }
        DeploymentsCommand::List { status } => {
            let query: Vec<(&str, String)> = status.map(|s| ("status", s.to_string())).into_iter().collect();
            show(json, &api.get("deployments", &query).await?, list)
        }
        DeploymentsCommand::Get { id } => show(json, &api.get(&format!("deployments/{id}"), &[]).await?, detail),
        DeploymentsCommand::Update {
            id,
            min,
            max,
            strategy,
            gpu_type,
            spot,
            no_spot,
            capacity_policy,
            on_demand_base,
            spot_overprovision,
        } => {
            let use_spot = match (spot, no_spot) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let body = compact(json!({
                "min_replicas": min,
                "max_replicas": max,
                "strategy": strategy,
                "gpu_type": gpu_type,
                "use_spot": use_spot,
                "capacity_policy": capacity_policy,
                "on_demand_base": on_demand_base,
                "spot_overprovision": spot_overprovision,
            }));
            require_change(
                &body,
                "--min, --max, --strategy, --gpu-type, --spot, --no-spot, --capacity-policy, --on-demand-base, \
                 --spot-overprovision",
            )?;
            show(json, &api.patch(&format!("deployments/{id}"), body).await?, detail)
        }
        DeploymentsCommand::Pause { id } => {
            let d = api.post(&format!("deployments/{id}/pause"), json!({})).await?;
            show(json, &d, changed)
        }
        DeploymentsCommand::Resume { id } => {
            let d = api.post(&format!("deployments/{id}/resume"), json!({})).await?;
            show(json, &d, changed)
        }
        DeploymentsCommand::Delete { id, yes } => {
            if !yes {
                let d = api.get(&format!("deployments/{id}"), &[]).await?;
                let action = format!(
                    "delete deployment {:?} of {} for good (its nodes are drained and terminated)",
                    text(&d, "name", ""),
                    text(&d, "model_name", "?")
                );
                confirm(&action, "the deployment id", &id.to_string())?;
            }
            let d = api.delete(&format!("deployments/{id}")).await?;
            show(json, &d, changed)
        }
    }
}

/// One line after a status change.
fn changed(d: &Value) {
    output::line(&format!(
        "deployment {} ({}) is {}",
        text(d, "id", "?"),
        text(d, "name", "?"),
        text(d, "status", "?")
    ));
}

/// `auto`, `A10G`, `2xA100`.
fn gpu(d: &Value) -> String {
    let kind = text(d, "gpu_type", "auto");
    match d["gpu_count"].as_i64() {
        Some(n) => format!("{n}x{kind}"),
        None => kind,
    }
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|d| {
            vec![
                text(d, "id", "-"),
                text(d, "name", "-"),
                text(d, "model_name", "-"),
                text(d, "status", "-"),
                text(d, "current_replicas", "-"),
                text(d, "min_replicas", "-"),
                text(d, "max_replicas", "-"),
                text(d, "strategy", "-"),
                text(d, "provider", "any"),
                text(d, "region", "any"),
                gpu(d),
                text(d, "capacity_policy", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no deployments");
        return;
    }
    output::table(
        &[
            "id", "name", "model", "status", "current", "min", "max", "strategy", "provider", "region", "gpu",
            "capacity",
        ],
        &rows,
    );
}

fn detail(d: &Value) {
    details(&[
        ("id", text(d, "id", "-")),
        ("name", text(d, "name", "-")),
        ("model", text(d, "model_name", "-")),
        ("status", text(d, "status", "-")),
        ("replicas", text(d, "current_replicas", "-")),
        ("min replicas", text(d, "min_replicas", "-")),
        ("max replicas", text(d, "max_replicas", "-")),
        ("strategy", text(d, "strategy", "-")),
        ("provider", text(d, "provider", "any")),
        ("region", text(d, "region", "any")),
        ("gpu type", text(d, "gpu_type", "auto")),
        ("gpus per node", text(d, "gpu_count", "fewest that fit")),
        ("capacity policy", text(d, "capacity_policy", "-")),
        ("on-demand base", text(d, "on_demand_base", "-")),
        ("spot over-provision", text(d, "spot_overprovision", "-")),
        ("created", when(d, "created_at", "-")),
        ("updated", when(d, "updated_at", "-")),
        ("deleted", when(d, "deleted_at", "-")),
    ]);
}
