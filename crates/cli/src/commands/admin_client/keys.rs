//! `crosslogic keys …`: `/admin/v1/tenants/{id}/keys` and `/admin/v1/keys/{id}`.

use chrono::{DateTime, FixedOffset};
use clap::{Args, Subcommand};
use crosslogic_core::ApiKeyRole;
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;
use super::{compact, confirm, details, one_of, require_change, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Settings shared by `create` and `update`; omitted ones are not sent.
#[derive(Debug, Args)]
pub struct Settings {
    /// A label for the key (e.g. ci, laptop).
    #[arg(long)]
    name: Option<String>,
    /// What the key may do under /v1 [default: developer].
    #[arg(long, value_parser = one_of(ApiKeyRole::ALL, ApiKeyRole::as_str))]
    role: Option<ApiKeyRole>,
    /// Requests per minute [server default: 60].
    #[arg(long, value_name = "N")]
    requests_per_min: Option<u32>,
    /// Tokens per minute (default: the environment's).
    #[arg(long, value_name = "N")]
    tokens_per_min: Option<u32>,
    /// Requests in flight at once [server default: 5].
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// When the key stops working, RFC 3339 (e.g. 2026-12-31T23:59:59Z); must be in the future.
    #[arg(long, value_name = "RFC3339", value_parser = DateTime::parse_from_rfc3339)]
    expires_at: Option<DateTime<FixedOffset>>,
}

impl Settings {
    fn body(self) -> Value {
        compact(json!({
            "name": self.name,
            "role": self.role,
            "rate_limit_requests_per_min": self.requests_per_min,
            "rate_limit_tokens_per_min": self.tokens_per_min,
            "concurrency_limit": self.concurrency,
            "expires_at": self.expires_at.map(|t| t.to_rfc3339()),
        }))
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key in one of a tenant's environments and print its secret, once.
    ///
    /// The secret (cl_xxxxxxxx_…) is shown only in this answer; the server
    /// keeps its SHA-256 and the prefix that identifies it in lists.
    Create {
        /// Tenant id.
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
        /// Environment id (of that tenant).
        #[arg(long, value_name = "ID")]
        environment: Uuid,
        #[command(flatten)]
        settings: Settings,
    },
    /// List a tenant's keys (prefixes only, never secrets).
    List {
        /// Tenant id.
        #[arg(long, value_name = "ID")]
        tenant: Uuid,
        /// Only the keys of this environment.
        #[arg(long, value_name = "ID")]
        environment: Option<Uuid>,
    },
    /// Show one key with its limits.
    Get {
        /// Key id.
        id: Uuid,
    },
    /// Change a key's name, role, limits or expiry; only the given fields change.
    Update {
        /// Key id.
        id: Uuid,
        #[command(flatten)]
        settings: Settings,
    },
    /// Revoke a key for good: requests using it fail at once and it cannot be reactivated.
    ///
    /// Asks you to type the key id unless --yes is given.
    Revoke {
        /// Key id.
        id: Uuid,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Suspend a key: requests using it fail at once, until `activate`.
    Suspend {
        /// Key id.
        id: Uuid,
    },
    /// Reactivate a suspended key (not a revoked one).
    Activate {
        /// Key id.
        id: Uuid,
    },
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        KeysCommand::Create {
            tenant,
            environment,
            settings,
        } => {
            let mut body = settings.body();
            if let Some(fields) = body.as_object_mut() {
                fields.insert("environment_id".to_owned(), json!(environment));
            }
            let key = api.post(&format!("tenants/{tenant}/keys"), body).await?;
            show(json, &key, created)
        }
        KeysCommand::List { tenant, environment } => {
            let query: Vec<(&str, String)> = environment
                .map(|e| ("environment_id", e.to_string()))
                .into_iter()
                .collect();
            show(json, &api.get(&format!("tenants/{tenant}/keys"), &query).await?, list)
        }
        KeysCommand::Get { id } => show(json, &api.get(&format!("keys/{id}"), &[]).await?, detail),
        KeysCommand::Update { id, settings } => {
            let body = settings.body();
            require_change(
                &body,
                "--name, --role, --requests-per-min, --tokens-per-min, --concurrency, --expires-at",
            )?;
            show(json, &api.patch(&format!("keys/{id}"), body).await?, detail)
        }
        KeysCommand::Revoke { id, yes } => {
            if !yes {
                let key = api.get(&format!("keys/{id}"), &[]).await?;
                let action = format!(
                    "revoke key {} ({:?}) of tenant {} for good",
                    text(&key, "key_prefix", "?"),
                    text(&key, "name", "unnamed"),
                    text(&key, "tenant_id", "?")
                );
                confirm(&action, "the key id", &id.to_string())?;
            }
            let key = api.post(&format!("keys/{id}/revoke"), json!({})).await?;
            show(json, &key, |k| changed(k, "revoked"))
        }
        KeysCommand::Suspend { id } => {
            let key = api.post(&format!("keys/{id}/suspend"), json!({})).await?;
            show(json, &key, |k| changed(k, "suspended"))
        }
        KeysCommand::Activate { id } => {
            let key = api.post(&format!("keys/{id}/activate"), json!({})).await?;
            show(json, &key, |k| changed(k, "active"))
        }
    }
}

/// The new key, then its secret with the warning that it is shown once.
fn created(key: &Value) {
    detail(key);
    output::line("");
    output::line(&format!("secret: {}", text(key, "key_secret", "?")));
    output::line("store it now; it cannot be shown again (the server keeps only its hash and prefix)");
}

/// One line after a status change.
fn changed(key: &Value, verb: &str) {
    output::line(&format!(
        "key {} ({}) is {verb}",
        text(key, "id", "?"),
        text(key, "key_prefix", "?")
    ));
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|k| {
            vec![
                text(k, "id", "-"),
                text(k, "key_prefix", "-"),
                text(k, "name", "-"),
                text(k, "role", "-"),
                text(k, "status", "-"),
                text(k, "environment_id", "-"),
                when(k, "expires_at", "never"),
                when(k, "last_used_at", "never"),
                when(k, "created_at", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no keys");
        return;
    }
    output::table(
        &[
            "id",
            "prefix",
            "name",
            "role",
            "status",
            "environment",
            "expires",
            "last used",
            "created",
        ],
        &rows,
    );
}

fn detail(k: &Value) {
    details(&[
        ("id", text(k, "id", "-")),
        ("prefix", text(k, "key_prefix", "-")),
        ("name", text(k, "name", "-")),
        ("tenant", text(k, "tenant_id", "-")),
        ("environment", text(k, "environment_id", "-")),
        ("role", text(k, "role", "-")),
        ("status", text(k, "status", "-")),
        ("requests/min", text(k, "rate_limit_requests_per_min", "-")),
        ("tokens/min", text(k, "rate_limit_tokens_per_min", "environment's")),
        ("concurrency", text(k, "concurrency_limit", "-")),
        ("expires", when(k, "expires_at", "never")),
        ("last used", when(k, "last_used_at", "never")),
        ("revoked", when(k, "revoked_at", "-")),
        ("created", when(k, "created_at", "-")),
    ]);
}
