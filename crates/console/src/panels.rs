//! Panels both consoles show: a tenant's billing summary, its keys, the
//! form that creates a key and the page that shows a new key once.

use axum::response::Response;
use crosslogic_billing::views::SummaryView;
use crosslogic_db::repo::api_keys::ApiKey;
use crosslogic_db::repo::environments::Environment;
use crosslogic_tenancy::CreatedKey;
use maud::{html, Markup};

use crate::page::{self, when};
use crate::session::Session;

/// Spend this month, credits, budget and arrears.
pub(crate) fn billing(s: &SummaryView) -> Markup {
    html! {
        section.cards aria-label="Billing" {
            div.card { span.label { "Spend this month" } span.value { (page::usd(s.period.cost.microdollars)) } span.sub { "payable " (page::usd(s.period.payable.microdollars)) } }
            div.card { span.label { "Credit balance" } span.value { (page::usd(s.credits.balance.microdollars)) }
                span.sub { @if let Some(e) = s.credits.next_expiry { "next expiry " (when(e)) } @else { "no expiry" } } }
            div.card { span.label { "Monthly budget" }
                @if let Some(b) = &s.budget {
                    span.value { (b.percent) " %" }
                    span.sub { (page::usd(b.spent.microdollars)) " of " (page::usd(b.amount.microdollars)) " · " (b.state) @if b.blocked { " · " (page::badge("blocked")) } }
                } @else { span.value { "–" } span.sub { "no budget set" } }
            }
            div.card { span.label { "Unpaid invoices" } span.value { (s.arrears.unpaid_invoices) }
                span.sub { @if let Some(at) = s.arrears.suspend_after { "suspension after " (when(at)) } @else { "none overdue" } } }
        }
    }
}

/// A table of keys; `revoke` gives each active key's revoke action URL.
pub(crate) fn keys(
    session: &Session,
    keys: &[ApiKey],
    envs: &[Environment],
    revoke: Option<&dyn Fn(&ApiKey) -> String>,
) -> Markup {
    let env_name = |id| envs.iter().find(|e| e.id == id).map(|e| e.name.as_str()).unwrap_or("?");
    html! {
        @if keys.is_empty() {
            (page::empty("No keys yet."))
        } @else {
            div.table-wrap { table #keys {
                thead { tr { th { "Prefix" } th { "Name" } th { "Environment" } th { "Role" } th { "Status" } th { "Last used" } th { "Created" } @if revoke.is_some() { th { span.sr-only { "Actions" } } } } }
                tbody { @for k in keys {
                    tr data-key=(k.key_prefix) {
                        td { code { (k.key_prefix) "…" } } td { (k.name) } td { (env_name(k.environment_id)) }
                        td { (k.role.as_str()) } td { (page::badge(k.status.as_str())) }
                        td { (k.last_used_at.map(page::ago).unwrap_or_else(|| "never".into())) } td { (when(k.created_at)) }
                        @if let Some(revoke) = revoke {
                            td { @if k.status != crosslogic_core::ApiKeyStatus::Revoked {
                                (page::action_button(session, &revoke(k), "Revoke", Some("Revoke this key? Requests with it fail at once, on every gateway."), true))
                            } }
                        }
                    }
                } }
            } }
        }
    }
}

/// The form creating a key in one of `envs`, posting to `action`.
pub(crate) fn new_key_form(session: &Session, action: &str, envs: &[Environment]) -> Markup {
    html! {
        @if envs.is_empty() {
            (page::empty("Create an environment first: keys belong to one."))
        } @else {
            form.grid method="post" action=(action) {
                (page::csrf(session))
                label { "Environment" select name="environment_id" required { @for e in envs { option value=(e.id) { (e.name) } } } }
                label { "Name" input name="name" placeholder="e.g. backend-prod" maxlength="200"; }
                label { "Role" select name="role" {
                    option value="developer" selected { "developer — inference and own usage" }
                    option value="admin" { "admin — also manages keys and channels" }
                    option value="read-only" { "read-only — usage only" }
                } }
                button type="submit" { "Create key" }
            }
        }
    }
}

/// The page showing a key just created: its secret, once.
pub(crate) fn created_key(session: &Session, k: &CreatedKey, back: &str, base_hint: &str) -> Response {
    let body = html! {
        h1 { "Key created" }
        section.created-key {
            p { strong { "Copy this key now: " } "it is shown only once (only its hash is kept)." }
            p { code #new-key-secret { (k.key_secret) } }
            p.muted { "Prefix " code { (k.key.key_prefix) } " · role " (k.key.role.as_str()) }
            p { "Use it as " code { "Authorization: Bearer <key>" } " with any OpenAI SDK, base URL " code { (base_hint) } "." }
            p { a.button href=(back) { "Done" } }
        }
    };
    page::render(session, "Key created", "keys", body)
}
