//! `crosslogic billing …`: usage, cost, credits, budgets, the Stripe export
//! log and revenue, over `/admin/v1/tenants/{id}/…`, `/admin/v1/usage` and
//! `/admin/v1/billing/…`.

use clap::{Args, Subcommand, ValueEnum};
use crosslogic_core::{BillingEventStatus, CreditType};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;
use super::{compact, details, one_of, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct BillingArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: BillingCommand,
}

/// A report's range: RFC 3339 timestamps or UTC dates (a date in --to
/// includes that day).
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Start (e.g. 2026-12-01 or 2026-12-01T00:00:00Z).
    #[arg(long, value_name = "WHEN")]
    from: Option<String>,
    /// End, exclusive (a date includes that day) [default: now].
    #[arg(long, value_name = "WHEN")]
    to: Option<String>,
}

impl RangeArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(f) = &self.from {
            q.push(("from", f.clone()));
        }
        if let Some(t) = &self.to {
            q.push(("to", t.clone()));
        }
        q
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GroupBy {
    Day,
    Hour,
    Model,
    Key,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Interval {
    Day,
    Hour,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RevenueBy {
    Day,
    Model,
}

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// A tenant's month so far: cost, credits applied, payable, credit balance, budget, arrears.
    Summary {
        /// Tenant id.
        tenant: Uuid,
    },
    /// Requests, tokens and cost per day, hour, model or key (a tenant's, or every tenant's).
    Usage {
        /// Only this tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<Uuid>,
        /// Only this key of the tenant.
        #[arg(long, value_name = "ID", requires = "tenant")]
        key: Option<Uuid>,
        /// Group by [default: day].
        #[arg(long, value_enum)]
        group_by: Option<GroupBy>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// A tenant's cost per day or hour and model.
    Costs {
        /// Tenant id.
        tenant: Uuid,
        /// Day or hour [default: day].
        #[arg(long, value_enum)]
        interval: Option<Interval>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// A tenant's credits, what remains of them and when they expire.
    Credits {
        /// Tenant id.
        tenant: Uuid,
    },
    /// Grant a tenant a credit (used before paid usage, soonest-expiring first).
    Grant {
        /// Tenant id.
        tenant: Uuid,
        /// Dollars, e.g. 25 or 2.50.
        #[arg(long, value_name = "DOLLARS")]
        amount: String,
        /// signup_bonus, referral, promotional or monthly_free.
        #[arg(long = "type", value_parser = one_of(CreditType::ALL, CreditType::as_str))]
        credit_type: CreditType,
        /// When it expires (RFC 3339) [default: never].
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// A note shown with the credit.
        #[arg(long)]
        description: Option<String>,
    },
    /// Set a tenant's monthly budget (warnings at 80 % and 100 %), or remove it with --clear.
    Budget {
        /// Tenant id.
        tenant: Uuid,
        /// Dollars per UTC month.
        #[arg(long, value_name = "DOLLARS", required_unless_present = "clear")]
        amount: Option<String>,
        /// Refuse the tenant's requests (429 insufficient_quota) once the budget is spent.
        #[arg(long, conflicts_with = "clear")]
        hard_stop: bool,
        /// Remove the budget (and any stop it caused).
        #[arg(long)]
        clear: bool,
    },
    /// The Stripe export log: one entry per tenant-hour (and correction), newest first.
    Exports {
        /// Only this tenant's.
        #[arg(long, value_name = "ID")]
        tenant: Option<Uuid>,
        /// Only pending, processed or failed exports.
        #[arg(long, value_parser = one_of(BillingEventStatus::ALL, BillingEventStatus::as_str))]
        status: Option<BillingEventStatus>,
        #[command(flatten)]
        range: RangeArgs,
        /// At most this many (1 to 500) [default: 50].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Queue a failed export again (after fixing what Stripe refused).
    Retry {
        /// Export id (from `billing exports`).
        id: Uuid,
    },
    /// Platform revenue per day (billed, credits, payable) or usage cost per model.
    Revenue {
        /// Day or model [default: day].
        #[arg(long, value_enum)]
        by: Option<RevenueBy>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Stripe webhooks received, newest first, and whether they were acted on.
    Webhooks {
        /// At most this many (1 to 500) [default: 50].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
}

pub async fn run(args: BillingArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        BillingCommand::Summary { tenant } => show(
            json,
            &api.get(&format!("tenants/{tenant}/billing"), &[]).await?,
            summary,
        ),
        BillingCommand::Usage {
            tenant,
            key,
            group_by,
            range,
        } => {
            let mut q = range.query();
            if let Some(g) = group_by {
                q.push(("group_by", format!("{g:?}").to_lowercase()));
            }
            if let Some(k) = key {
                q.push(("key_id", k.to_string()));
            }
            let path = match tenant {
                Some(t) => format!("tenants/{t}/usage"),
                None => "usage".to_owned(),
            };
            show(json, &api.get(&path, &q).await?, usage)
        }
        BillingCommand::Costs {
            tenant,
            interval,
            range,
        } => {
            let mut q = range.query();
            if let Some(i) = interval {
                q.push(("interval", format!("{i:?}").to_lowercase()));
            }
            show(
                json,
                &api.get(&format!("tenants/{tenant}/billing/costs"), &q).await?,
                costs,
            )
        }
        BillingCommand::Credits { tenant } => show(
            json,
            &api.get(&format!("tenants/{tenant}/credits"), &[]).await?,
            credits,
        ),
        BillingCommand::Grant {
            tenant,
            amount,
            credit_type,
            expires,
            description,
        } => {
            let body = compact(json!({
                "credit_type": credit_type,
                "amount": amount,
                "expires_at": expires,
                "description": description,
            }));
            let c = api.post(&format!("tenants/{tenant}/credits"), body).await?;
            show(json, &c, |c| {
                output::line(&format!(
                    "credit {} granted: {} ({}), expires {}",
                    text(c, "id", "?"),
                    money(&c["amount"]),
                    text(c, "credit_type", "?"),
                    when(c, "expires_at", "never")
                ));
            })
        }
        BillingCommand::Budget {
            tenant,
            amount,
            hard_stop,
            clear,
        } => {
            let s = if clear {
                api.delete(&format!("tenants/{tenant}/budget")).await?
            } else {
                api.put(
                    &format!("tenants/{tenant}/budget"),
                    json!({"amount": amount, "hard_stop": hard_stop}),
                )
                .await?
            };
            show(json, &s, summary)
        }
        BillingCommand::Exports {
            tenant,
            status,
            range,
            limit,
        } => {
            let mut q = range.query();
            if let Some(t) = tenant {
                q.push(("tenant_id", t.to_string()));
            }
            if let Some(s) = status {
                q.push(("status", s.to_string()));
            }
            if let Some(l) = limit {
                q.push(("limit", l.to_string()));
            }
            show(json, &api.get("billing/exports", &q).await?, exports)
        }
        BillingCommand::Retry { id } => {
            let e = api.post(&format!("billing/exports/{id}/retry"), json!({})).await?;
            show(json, &e, |e| {
                output::line(&format!("export {} queued again", text(e, "id", "?")))
            })
        }
        BillingCommand::Revenue { by, range } => {
            let mut q = range.query();
            if let Some(b) = by {
                q.push(("group_by", format!("{b:?}").to_lowercase()));
            }
            show(json, &api.get("billing/revenue", &q).await?, revenue)
        }
        BillingCommand::Webhooks { limit } => {
            let q: Vec<(&str, String)> = limit.map(|l| ("limit", l.to_string())).into_iter().collect();
            show(json, &api.get("billing/webhooks", &q).await?, webhooks)
        }
    }
}

/// `$12.50` from a money object.
fn money(m: &Value) -> String {
    match m["amount"].as_str() {
        Some(a) => format!("${a}"),
        None => "-".into(),
    }
}

fn summary(s: &Value) {
    let p = &s["period"];
    let mut fields = vec![
        ("tenant", text(s, "tenant_id", "-")),
        (
            "period",
            format!("{} to {}", when(p, "start", "?"), when(p, "end", "?")),
        ),
        ("cost so far", money(&p["cost"])),
        ("settled", money(&p["billed"])),
        ("credits applied", money(&p["credits_applied"])),
        ("payable", money(&p["payable"])),
        ("not settled yet", money(&p["unsettled"])),
        ("credit balance", money(&s["credits"]["balance"])),
        ("next credit expiry", when(&s["credits"], "next_expiry", "-")),
    ];
    match s["budget"].as_object() {
        Some(_) => {
            let b = &s["budget"];
            fields.push((
                "budget",
                format!(
                    "{} / month, {}% used ({}){}{}",
                    money(&b["amount"]),
                    text(b, "percent", "?"),
                    text(b, "state", "?"),
                    if b["hard_stop"] == true { ", hard stop" } else { "" },
                    if b["blocked"] == true {
                        " — REQUESTS STOPPED"
                    } else {
                        ""
                    }
                ),
            ));
        }
        None => fields.push(("budget", "none".into())),
    }
    fields.push(("unpaid invoices", text(&s["arrears"], "unpaid_invoices", "0")));
    fields.push(("suspended after", when(&s["arrears"], "suspend_after", "-")));
    fields.push((
        "stripe customer",
        text(s, "stripe_customer_id", "- (created at the first export)"),
    ));
    details(&fields);
}

fn usage(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|r| {
            vec![
                text(r, "group", "-"),
                text(r, "requests", "0"),
                text(r, "failed_requests", "0"),
                text(r, "prompt_tokens", "0"),
                text(r, "completion_tokens", "0"),
                money(&r["cost"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no usage in this range");
        return;
    }
    output::table(&["group", "requests", "failed", "prompt", "completion", "cost"], &rows);
}

fn costs(series: &Value) {
    let rows: Vec<Vec<String>> = rows(series)
        .iter()
        .map(|r| {
            vec![
                text(r, "period", "-"),
                text(r, "model", "-"),
                text(r, "requests", "0"),
                text(r, "total_tokens", "0"),
                money(&r["cost"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no cost in this range");
        return;
    }
    output::table(&["period", "model", "requests", "tokens", "cost"], &rows);
    output::line(&format!("total: {}", money(&series["total"])));
}

fn credits(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|c| {
            vec![
                text(c, "id", "-"),
                text(c, "credit_type", "-"),
                money(&c["amount"]),
                money(&c["remaining"]),
                when(c, "expires_at", "never"),
                text(c, "status", "-"),
                text(c, "description", ""),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no credits");
        return;
    }
    output::table(
        &["id", "type", "amount", "remaining", "expires", "status", "description"],
        &rows,
    );
}

fn exports(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|e| {
            vec![
                text(e, "id", "-"),
                when(e, "hour", "-"),
                text(e, "tenant_id", "-"),
                text(e, "revision", "0"),
                money(&e["amount"]),
                text(e, "status", "-"),
                text(e, "attempts", "0"),
                text(e, "last_error", ""),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no exports");
        return;
    }
    output::table(
        &["id", "hour", "tenant", "rev", "amount", "status", "attempts", "error"],
        &rows,
    );
}

fn revenue(report: &Value) {
    let by_model = report["group_by"] == "model";
    let rows: Vec<Vec<String>> = rows(report)
        .iter()
        .map(|r| {
            if by_model {
                vec![
                    text(r, "model", "-"),
                    text(r, "requests", "0"),
                    text(r, "total_tokens", "0"),
                    money(&r["cost"]),
                ]
            } else {
                vec![
                    text(r, "day", "-"),
                    text(r, "tenants", "0"),
                    money(&r["billed"]),
                    money(&r["credits_applied"]),
                    money(&r["payable"]),
                ]
            }
        })
        .collect();
    if rows.is_empty() {
        output::line("no revenue in this range");
        return;
    }
    if by_model {
        output::table(&["model", "requests", "tokens", "cost"], &rows);
    } else {
        output::table(&["day", "tenants", "billed", "credits", "payable"], &rows);
    }
}

fn webhooks(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|w| {
            vec![
                when(w, "received_at", "-"),
                text(w, "event_id", "-"),
                text(w, "event_type", "-"),
                if w["processed"] == true {
                    "yes".into()
                } else {
                    "no".into()
                },
                text(w, "error", ""),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no webhooks received");
        return;
    }
    output::table(&["received", "event", "type", "acted on", "error"], &rows);
}
