//! `crosslogic tenants …`: `/admin/v1/tenants`.

use clap::{Args, Subcommand};
use crosslogic_core::{BillingPlan, TenantStatus};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;
use super::{compact, confirm, details, one_of, require_change, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct TenantsArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: TenantsCommand,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant; it starts active on the given billing plan.
    Create {
        /// Display name, e.g. "Acme Corp".
        #[arg(long)]
        name: String,
        /// Contact and billing email; unique among tenants.
        #[arg(long)]
        email: String,
        /// Billing plan [default: serverless].
        #[arg(long, value_name = "PLAN", value_parser = one_of(BillingPlan::ALL, BillingPlan::as_str))]
        billing_plan: Option<BillingPlan>,
        /// Stripe customer id (cus_…) when the tenant already has one.
        #[arg(long, value_name = "ID")]
        stripe_customer_id: Option<String>,
    },
    /// List tenants, newest first, one page at a time.
    List {
        /// Only tenants in this status.
        #[arg(long, value_parser = one_of(TenantStatus::ALL, TenantStatus::as_str))]
        status: Option<TenantStatus>,
        /// Page size (the server caps it).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Continue after this tenant id (the cursor the previous page printed).
        #[arg(long, value_name = "ID")]
        after: Option<Uuid>,
    },
    /// Show one tenant with its limits.
    Get {
        /// Tenant id.
        id: Uuid,
    },
    /// Change a tenant's name, email, plan or tenant-wide limits; only the given fields change.
    Update {
        /// Tenant id.
        id: Uuid,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New contact email.
        #[arg(long)]
        email: Option<String>,
        /// New billing plan.
        #[arg(long, value_name = "PLAN", value_parser = one_of(BillingPlan::ALL, BillingPlan::as_str))]
        billing_plan: Option<BillingPlan>,
        /// Stripe customer id (cus_…).
        #[arg(long, value_name = "ID")]
        stripe_customer_id: Option<String>,
        /// Requests per minute across all the tenant's keys.
        #[arg(long, value_name = "N")]
        requests_per_min: Option<u32>,
        /// Tokens per minute across all the tenant's keys.
        #[arg(long, value_name = "N")]
        tokens_per_min: Option<u32>,
        /// Requests in flight at once across all the tenant's keys.
        #[arg(long, value_name = "N")]
        concurrency: Option<u32>,
    },
    /// Suspend a tenant: every key of it stops working at once, until `activate`.
    Suspend {
        /// Tenant id.
        id: Uuid,
    },
    /// Reactivate a suspended tenant.
    Activate {
        /// Tenant id.
        id: Uuid,
    },
    /// Delete a tenant (soft: its keys stop working and it cannot be reactivated; records stay for billing).
    ///
    /// Asks you to type the tenant id unless --yes is given.
    Delete {
        /// Tenant id.
        id: Uuid,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: TenantsArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        TenantsCommand::Create {
            name,
            email,
            billing_plan,
            stripe_customer_id,
        } => {
            let body = compact(json!({
                "name": name, "email": email, "billing_plan": billing_plan, "stripe_customer_id": stripe_customer_id,
            }));
            show(json, &api.post("tenants", body).await?, detail)
        }
        TenantsCommand::List { status, limit, after } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s.to_string()));
            }
            if let Some(n) = limit {
                query.push(("limit", n.to_string()));
            }
            if let Some(a) = after {
                query.push(("after", a.to_string()));
            }
            show(json, &api.get("tenants", &query).await?, list)
        }
        TenantsCommand::Get { id } => show(json, &api.get(&format!("tenants/{id}"), &[]).await?, detail),
        TenantsCommand::Update {
            id,
            name,
            email,
            billing_plan,
            stripe_customer_id,
            requests_per_min,
            tokens_per_min,
            concurrency,
        } => {
            let body = compact(json!({
                "name": name, "email": email, "billing_plan": billing_plan,
                "stripe_customer_id": stripe_customer_id,
                "rate_limit_requests_per_min": requests_per_min,
                "rate_limit_tokens_per_min": tokens_per_min,
                "concurrency_limit": concurrency,
            }));
            require_change(
                &body,
                "--name, --email, --billing-plan, --stripe-customer-id, --requests-per-min, --tokens-per-min, \
                 --concurrency",
            )?;
            show(json, &api.patch(&format!("tenants/{id}"), body).await?, detail)
        }
        TenantsCommand::Suspend { id } => {
            let t = api.post(&format!("tenants/{id}/suspend"), json!({})).await?;
            show(json, &t, |t| changed(t, "suspended"))
        }
        TenantsCommand::Activate { id } => {
            let t = api.post(&format!("tenants/{id}/activate"), json!({})).await?;
            show(json, &t, |t| changed(t, "active"))
        }
        TenantsCommand::Delete { id, yes } => {
            if !yes {
                let t = api.get(&format!("tenants/{id}"), &[]).await?;
                let action = format!(
                    "delete tenant {:?} <{}> and stop all its keys",
                    text(&t, "name", ""),
                    text(&t, "email", "")
                );
                confirm(&action, "the tenant id", &id.to_string())?;
            }
            let t = api.delete(&format!("tenants/{id}")).await?;
            show(json, &t, |t| changed(t, "deleted"))
        }
    }
}

/// One line after a status change.
fn changed(t: &Value, verb: &str) {
    output::line(&format!(
        "tenant {} ({}) is {verb}",
        text(t, "id", "?"),
        text(t, "name", "?")
    ));
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|t| {
            vec![
                text(t, "id", "-"),
                text(t, "name", "-"),
                text(t, "email", "-"),
                text(t, "status", "-"),
                text(t, "billing_plan", "-"),
                when(t, "created_at", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no tenants");
        return;
    }
    output::table(&["id", "name", "email", "status", "plan", "created"], &rows);
    if let Some(next) = page["next_after"].as_str().filter(|_| page["has_more"] == true) {
        output::line(&format!("more tenants: add --after {next}"));
    }
}

fn detail(t: &Value) {
    let default = "platform default";
    details(&[
        ("id", text(t, "id", "-")),
        ("name", text(t, "name", "-")),
        ("email", text(t, "email", "-")),
        ("status", text(t, "status", "-")),
        ("billing plan", text(t, "billing_plan", "-")),
        ("stripe customer", text(t, "stripe_customer_id", "-")),
        ("requests/min", text(t, "rate_limit_requests_per_min", default)),
        ("tokens/min", text(t, "rate_limit_tokens_per_min", default)),
        ("concurrency", text(t, "concurrency_limit", default)),
        ("regions", text(t, "region_preferences", "any")),
        ("created", when(t, "created_at", "-")),
        ("updated", when(t, "updated_at", "-")),
        ("deleted", when(t, "deleted_at", "-")),
    ]);
}
