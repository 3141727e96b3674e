//! `crosslogic environments …`: `/admin/v1/tenants/{id}/environments` and
//! `/admin/v1/environments/{id}`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;
use super::{compact, confirm, details, require_change, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct EnvironmentsArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: EnvironmentsCommand,
}

/// Settings shared by `create` and `update`; omitted ones are not sent.
#[derive(Debug, Args)]
pub struct Settings {
    /// Preferred region code for routing (e.g. us-east); must be a known region.
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
    /// Models this environment may use, comma-separated (default: all models).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Daily token quota [server default: 1000000].
    #[arg(long, value_name = "N")]
    tokens_per_day: Option<u64>,
    /// Tokens per minute [server default: 10000].
    #[arg(long, value_name = "N")]
    tokens_per_min: Option<u32>,
    /// Requests in flight at once [server default: 10].
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// Requests per minute (default: no environment-wide limit).
    #[arg(long, value_name = "N")]
    requests_per_min: Option<u32>,
}

impl Settings {
    fn body(self, name: Option<String>, all_models: bool) -> Value {
        let models = if all_models { Some(Vec::new()) } else { self.models };
        compact(json!({
            "name": name,
            "region": self.region,
            "model_list": models,
            "quota_tokens_per_day": self.tokens_per_day,
            "quota_tokens_per_minute": self.tokens_per_min,
            "concurrency_limit": self.concurrency,
            "rate_limit_requests_per_min": self.requests_per_min,
        }))
    }
}

#[derive(Debug, Subcommand)]
pub enum EnvironmentsCommand {
    /// Create an environment (dev/staging/prod) in an active tenant.
    Create {
        /// Tenant id.
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
        /// Name, unique within the tenant (e.g. prod).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// List a tenant's environments.
    List {
        /// Tenant id.
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
    },
    /// Show one environment with its quotas.
    Get {
        /// Environment id.
        id: Uuid,
    },
    /// Change an environment's name, region, models or limits; only the given fields change.
    Update {
        /// Environment id.
        id: Uuid,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Allow every model again (clears the --models list).
        #[arg(long, conflicts_with = "models")]
        all_models: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Suspend an environment: its keys stop working at once, until `activate`.
    Suspend {
        /// Environment id.
        id: Uuid,
    },
    /// Reactivate a suspended environment.
    Activate {
        /// Environment id.
        id: Uuid,
    },
    /// Delete an environment and all its API keys, for good.
    ///
    /// Asks you to type the environment id unless --yes is given.
    Delete {
        /// Environment id.
        id: Uuid,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: EnvironmentsArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        EnvironmentsCommand::Create { tenant, name, settings } => {
            let body = settings.body(Some(name), false);
            let env = api.post(&format!("tenants/{tenant}/environments"), body).await?;
            show(json, &env, detail)
        }
        EnvironmentsCommand::List { tenant } => {
            let page = api.get(&format!("tenants/{tenant}/environments"), &[]).await?;
            show(json, &page, list)
        }
        EnvironmentsCommand::Get { id } => show(json, &api.get(&format!("environments/{id}"), &[]).await?, detail),
        EnvironmentsCommand::Update {
            id,
            name,
            all_models,
            settings,
        } => {
            let body = settings.body(name, all_models);
            require_change(
                &body,
                "--name, --region, --models, --all-models, --tokens-per-day, --tokens-per-min, --concurrency, \
                 --requests-per-min",
            )?;
            show(json, &api.patch(&format!("environments/{id}"), body).await?, detail)
        }
        EnvironmentsCommand::Suspend { id } => {
            let env = api.post(&format!("environments/{id}/suspend"), json!({})).await?;
            show(json, &env, |e| changed(e, "suspended"))
        }
        EnvironmentsCommand::Activate { id } => {
            let env = api.post(&format!("environments/{id}/activate"), json!({})).await?;
            show(json, &env, |e| changed(e, "active"))
        }
        EnvironmentsCommand::Delete { id, yes } => {
            if !yes {
                let env = api.get(&format!("environments/{id}"), &[]).await?;
                let action = format!(
                    "delete environment {:?} of tenant {} and all its API keys",
                    text(&env, "name", ""),
                    text(&env, "tenant_id", "?")
                );
                confirm(&action, "the environment id", &id.to_string())?;
            }
            let answer = api.delete(&format!("environments/{id}")).await?;
            show(json, &answer, |_| output::line(&format!("environment {id} is deleted")))
        }
    }
}

/// One line after a status change.
fn changed(env: &Value, verb: &str) {
    output::line(&format!(
        "environment {} ({}) is {verb}",
        text(env, "id", "?"),
        text(env, "name", "?")
    ));
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|e| {
            vec![
                text(e, "id", "-"),
                text(e, "name", "-"),
                text(e, "region", "any"),
                text(e, "status", "-"),
                text(e, "model_list", "all"),
                text(e, "quota_tokens_per_day", "-"),
                text(e, "quota_tokens_per_minute", "-"),
                text(e, "concurrency_limit", "-"),
                when(e, "created_at", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no environments");
        return;
    }
    output::table(
        &[
            "id",
            "name",
            "region",
            "status",
            "models",
            "tokens/day",
            "tokens/min",
            "concurrency",
            "created",
        ],
        &rows,
    );
}

fn detail(e: &Value) {
    details(&[
        ("id", text(e, "id", "-")),
        ("tenant", text(e, "tenant_id", "-")),
        ("name", text(e, "name", "-")),
        ("status", text(e, "status", "-")),
        ("region", text(e, "region", "any")),
        ("models", text(e, "model_list", "all")),
        ("tokens/day", text(e, "quota_tokens_per_day", "-")),
        ("tokens/min", text(e, "quota_tokens_per_minute", "-")),
        ("concurrency", text(e, "concurrency_limit", "-")),
        ("requests/min", text(e, "rate_limit_requests_per_min", "no limit")),
        ("created", when(e, "created_at", "-")),
        ("updated", when(e, "updated_at", "-")),
    ]);
}
