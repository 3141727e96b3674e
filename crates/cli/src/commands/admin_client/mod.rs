//! `crosslogic tenants|environments|keys|regions|models|gpus|deployments|nodes|notifications|billing …`:
//! an HTTP client of the admin API
//! (`/admin/v1`) of a running `crosslogic serve`, so operators can work while
//! the server owns the (possibly embedded) database. No database, no
//! configuration file: only `--url` and `ADMIN_API_TOKEN`.

pub mod billing;
mod client;
pub mod deployments;
pub mod environments;
pub mod gpus;
pub mod keys;
pub mod models;
pub mod nodes;
pub mod notifications;
pub mod regions;
pub mod tenants;

use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::output;

/// Where the admin API is and how to print its answers; accepted before or
/// after the subcommand.
#[derive(Debug, Args)]
pub struct ClientOpts {
    /// Base URL of the running `crosslogic serve` (the operator token is read
    /// from the ADMIN_API_TOKEN environment variable, never from a flag).
    #[arg(
        long,
        global = true,
        env = "CROSSLOGIC_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080",
        value_name = "URL",
        display_order = 900
    )]
    pub url: String,
    /// Print the API's JSON response as-is (pretty) instead of tables.
    #[arg(long, global = true, display_order = 901)]
    pub json: bool,
}

/// Shown under every client command's help.
const TOKEN_HELP: &str = "Talks to the admin API of a running `crosslogic serve` at --url (env CROSSLOGIC_URL). \
The operator token is read from the environment only: export ADMIN_API_TOKEN (the value the server was started \
with); it is never accepted as a flag, so it stays out of shell history and process lists.";

/// The admin-API client commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage tenants (the organisations that buy inference) through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Tenants(tenants::TenantsArgs),
    /// Manage a tenant's environments (dev/staging/prod: region, models, quotas) through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Environments(environments::EnvironmentsArgs),
    /// Manage API keys (create, list, limits, revoke) through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Keys(keys::KeysArgs),
    /// Manage regions (where nodes run, their providers and cost multiplier) through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Regions(regions::RegionsArgs),
    /// Manage the model catalog (sizes, prices, capacity; deprecate) through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Models(models::ModelsArgs),
    /// Manage the GPU catalog (GPU types and hourly prices per provider) through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Gpus(gpus::GpusArgs),
    /// Manage deployments (a model on min..max replicas, placed and scaled by the reconciler) through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Deployments(deployments::DeploymentsArgs),
    /// Inspect, drain and terminate nodes and read their launch logs through the admin API.
    #[command(after_help = TOKEN_HELP)]
    Nodes(nodes::NodesArgs),
    /// Manage notification channels (Discord, Slack, email, signed webhooks), test them and read the delivery log.
    #[command(after_help = TOKEN_HELP)]
    Notifications(notifications::NotificationsArgs),
    /// Usage and cost reports, credits, budgets, the Stripe export log and revenue.
    #[command(after_help = TOKEN_HELP)]
    Billing(billing::BillingArgs),
}

/// Runs one client command.
pub async fn run(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::Tenants(args) => tenants::run(args).await?,
        AdminCommand::Environments(args) => environments::run(args).await?,
        AdminCommand::Keys(args) => keys::run(args).await?,
        AdminCommand::Regions(args) => regions::run(args).await?,
        AdminCommand::Models(args) => models::run(args).await?,
        AdminCommand::Gpus(args) => gpus::run(args).await?,
        AdminCommand::Deployments(args) => deployments::run(args).await?,
        AdminCommand::Nodes(args) => nodes::run(args).await?,
        AdminCommand::Notifications(args) => notifications::run(args).await?,
        AdminCommand::Billing(args) => billing::run(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A parser accepting exactly the wire names of a `crosslogic-core` enum,
/// which `--help` lists.
pub(crate) fn one_of<T>(all: &'static [T], name: fn(T) -> &'static str) -> impl TypedValueParser<Value = T>
where
    T: Copy + Clone + Send + Sync + std::str::FromStr + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.iter().map(|v| name(*v))).try_map(|s| s.parse::<T>())
}

/// A JSON object without its null fields: omitted flags are not sent, so
/// the API applies its defaults or leaves the field unchanged.
fn compact(value: Value) -> Value {
    match value {
        Value::Object(mut map) => {
            map.retain(|_, v| !v.is_null());
            Value::Object(map)
        }
        other => other,
    }
}

/// Fails when an update names no field at all.
fn require_change(body: &Value, flags: &str) -> anyhow::Result<()> {
    if body.as_object().is_some_and(|m| m.is_empty()) {
        anyhow::bail!("nothing to change: give at least one of {flags}");
    }
    Ok(())
}

/// Prints the API's JSON, pretty (nothing for an empty answer).
fn print_json(value: &Value) -> anyhow::Result<()> {
    if !value.is_null() {
        output::line(&serde_json::to_string_pretty(value)?);
    }
    Ok(())
}

/// Prints `value` as JSON with `--json`, else as `human` renders it.
fn show(json: bool, value: &Value, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
    if json {
        print_json(value)
    } else {
        human(value);
        Ok(())
    }
}

/// The rows of a list answer (`{"object": "list", "data": [...]}`).
fn rows(list: &Value) -> &[Value] {
    list["data"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A field as text: strings as they are, numbers and booleans printed,
/// arrays joined with commas, and `missing` for null or absent.
fn text(value: &Value, key: &str, missing: &str) -> String {
    match &value[key] {
        Value::Null => missing.to_owned(),
        Value::String(s) if s.is_empty() => missing.to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => missing.to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// A timestamp field as `YYYY-MM-DD HH:MM:SS UTC` (or `missing`).
fn when(value: &Value, key: &str, missing: &str) -> String {
    match value[key].as_str() {
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw).map_or_else(
            |_| raw.to_owned(),
            |t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string()
            },
        ),
        None => missing.to_owned(),
    }
}

/// Prints `label  value` lines with the values aligned.
fn details(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(l, _)| l.len() + 1).max().unwrap_or(0);
    for (label, value) in fields {
        output::line(&format!("{:<width$}  {value}", format!("{label}:")));
    }
}

/// Asks to type `id` (described as `what`) before a destructive action;
/// refuses without a terminal, pointing at `--yes`.
fn confirm(action: &str, what: &str, id: &str) -> anyhow::Result<()> {
    super::confirm_typing(action, what, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn omitted_fields_are_not_sent() {
        let body = compact(json!({ "name": "x", "email": null, "limit": 0 }));
        assert_eq!(body, json!({ "name": "x", "limit": 0 }));
        assert!(require_change(&compact(json!({ "name": null })), "--name").is_err());
        assert!(require_change(&body, "--name").is_ok());
    }

    #[test]
    fn fields_render_for_humans() {
        let v = json!({ "s": "a", "e": "", "n": 5, "l": ["x", "y"], "z": [], "t": "2025-01-19T12:34:56.789Z" });
        assert_eq!(text(&v, "s", "-"), "a");
        assert_eq!(text(&v, "e", "-"), "-");
        assert_eq!(text(&v, "n", "-"), "5");
        assert_eq!(text(&v, "l", "-"), "x,y");
        assert_eq!(text(&v, "z", "all"), "all");
        assert_eq!(text(&v, "absent", "never"), "never");
        assert_eq!(when(&v, "t", "-"), "2025-01-19 12:34:56 UTC");
        assert_eq!(when(&v, "absent", "never"), "never");
    }
}
