//! The fleet: deployments (create, scale, pause, resume, delete), nodes
//! (status, load, health, the launch log followed live; drain, terminate).

use axum::extract::{Path, Query, State};
use axum::Json;
use crosslogic_control::admin::views::NodeLogsView;
use crosslogic_control::fleet::{self, CreateDeployment, UpdateDeployment};
use crosslogic_core::{DeploymentStatus, NodeStatus, ServiceError};
use crosslogic_db::repo::nodes::NodeFilter;
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::Op;
use crate::form::{self, CsrfForm};
use crate::page::{self, after, when, PageResult};
use crate::ConsoleState;

pub(crate) async fn deployments(State(s): State<ConsoleState>, Op(session): Op) -> PageResult {
    let pool = s.pool();
    let list = fleet::list_deployments(pool, None).await?;
    let models = fleet::list_models(pool).await?;
    let body = html! {
        h1 { "Deployments" }
        @if s.admin.jobs.is_none() {
            p.flash.error role="note" { "This server runs no provisioner: deployments are recorded but no node is launched (start it with "
                code { "--provisioner local" } " or " code { "skypilot" } ")." }
        }
        @if list.is_empty() {
            (page::empty("No deployments yet: create one below and the reconciler launches its nodes."))
        } @else {
            div.table-wrap { table #deployments {
                thead { tr { th { "Name" } th { "Model" } th { "Replicas" } th { "Placement" } th { "Status" } th { "Scale (min–max)" } th { span.sr-only { "Actions" } } } }
                tbody { @for d in &list {
                    tr #{"d-" (d.id)} data-deployment=(d.name) {
                        td { (d.name) } td { (d.model_name) }
                        td.num { span.replicas { (d.current_replicas) } " / " (d.min_replicas) "–" (d.max_replicas) }
                        td { (d.strategy.as_str()) " · " (d.provider.as_deref().unwrap_or("any cloud")) " · " (d.region.as_deref().unwrap_or("any region"))
                             " · " (d.gpu_type) " · " (d.capacity_policy.as_str())
                             @if d.capacity_policy == crosslogic_core::CapacityPolicy::Hedged {
                                 " (on-demand base " (d.on_demand_base) ", +" (d.spot_overprovision) " spot)"
                             } }
                        td { (page::badge(d.status.as_str())) }
                        td {
                            @if d.status != DeploymentStatus::Deleted {
                                form.inline.scale method="post" action={"/console/deployments/" (d.id) "/scale"} {
                                    (page::csrf(&session))
                                    label.sr-only for={"min-" (d.id)} { "Minimum replicas" }
                                    input #{"min-" (d.id)} type="number" name="min_replicas" min="0" max="1000" value=(d.min_replicas);
                                    label.sr-only for={"max-" (d.id)} { "Maximum replicas" }
                                    input #{"max-" (d.id)} type="number" name="max_replicas" min="1" max="1000" value=(d.max_replicas);
                                    button type="submit" { "Scale" }
                                }
                            }
                        }
                        td.row-actions {
                            @match d.status {
                                DeploymentStatus::Paused => (page::action_button(&session, &format!("/console/deployments/{}/resume", d.id), "Resume", None, false)),
                                DeploymentStatus::Deleted => {},
                                _ => (page::action_button(&session, &format!("/console/deployments/{}/pause", d.id), "Pause", Some("Pause this deployment? Its nodes are drained and terminated."), false)),
                            }
                            @if d.status != DeploymentStatus::Deleted {
                                (page::action_button(&session, &format!("/console/deployments/{}/delete", d.id), "Delete", Some("Delete this deployment? Its nodes are terminated."), true))
                            }
                            a href={"/console/nodes?deployment=" (d.id)} { "Nodes" }
                        }
                    }
                } }
            } }
        }
        h2 { "New deployment" }
        form.grid method="post" action="/console/deployments" {
            (page::csrf(&session))
            label { "Name" input name="name" required maxlength="100" placeholder="e.g. llama-3-8b-prod"; }
            label { "Model" select name="model_name" required {
                @for m in models.iter().filter(|m| m.status == crosslogic_core::ModelStatus::Active) { option value=(m.name) { (m.name) } }
            } }
            label { "Min replicas" input type="number" name="min_replicas" min="0" max="1000" value="1"; }
            label { "Max replicas" input type="number" name="max_replicas" min="1" max="1000" value="2"; }
            label { "Strategy" select name="strategy" { option value="spread" selected { "spread" } option value="packed" { "packed" } } }
            label { "Provider" select name="provider" {
                option value="" selected { "any" }
                @for p in crosslogic_core::Provider::ALL { option value=(p.as_str()) { (p.as_str()) } }
            } }
            label { "Region (optional)" input name="region" placeholder="any"; }
            label { "GPU type" input name="gpu_type" value="auto"; }
            label { "Capacity" select name="capacity_policy" {
                option value="spot" selected { "spot first, on-demand fallback" }
                option value="hedged" { "hedged: spread spot + over-provision + on-demand fallback" }
                option value="on_demand" { "on-demand only" }
            } }
            label { "On-demand base (hedged)" input type="number" name="on_demand_base" min="0" max="1000" placeholder="0"; }
            label { "Extra spot replicas (hedged)" input type="number" name="spot_overprovision" min="0" max="100" placeholder="1"; }
            button type="submit" { "Create deployment" }
        }
    };
    Ok(page::render(&session, "Deployments", "deployments", body))
}

/// The new-deployment form.
#[derive(Debug, Deserialize)]
pub(crate) struct NewDeployment {
    name: String,
    model_name: String,
    min_replicas: Option<String>,
    max_replicas: Option<String>,
    strategy: Option<String>,
    provider: Option<String>,
    region: Option<String>,
    gpu_type: Option<String>,
    capacity_policy: Option<String>,
    on_demand_base: Option<String>,
    spot_overprovision: Option<String>,
}

impl NewDeployment {
    fn input(&self) -> Result<CreateDeployment, ServiceError> {
        Ok(CreateDeployment {
            name: self.name.clone(),
            model_name: self.model_name.clone(),
            min_replicas: form::int("min_replicas", &self.min_replicas)?,
            max_replicas: form::int("max_replicas", &self.max_replicas)?,
            strategy: form::parsed("strategy", &self.strategy)?,
            provider: form::parsed("provider", &self.provider)?,
            region: form::text(&self.region),
            gpu_type: form::text(&self.gpu_type),
            gpu_count: None,
            use_spot: None,
            capacity_policy: form::parsed("capacity_policy", &self.capacity_policy)?,
            on_demand_base: form::int("on_demand_base", &self.on_demand_base)?,
            spot_overprovision: form::int("spot_overprovision", &self.spot_overprovision)?,
            metadata: None,
        })
    }
}

pub(crate) async fn create_deployment(
    State(s): State<ConsoleState>,
    CsrfForm(session, f): CsrfForm<NewDeployment>,
) -> PageResult {
    let r = match f.input() {
        Ok(input) => fleet::create_deployment(s.pool(), &session.actor(), input).await,
        Err(e) => Err(e),
    };
    after("/console/deployments", r, |d| {
        format!(
            "Deployment {} created: the reconciler launches its nodes (watch them on the Nodes page).",
            d.name
        )
    })
}

/// The scale form.
#[derive(Debug, Deserialize)]
pub(crate) struct Scale {
    min_replicas: Option<String>,
    max_replicas: Option<String>,
}

pub(crate) async fn scale_deployment(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, f): CsrfForm<Scale>,
) -> PageResult {
    let r = async {
        let input = UpdateDeployment {
            min_replicas: form::int("min_replicas", &f.min_replicas)?,
            max_replicas: form::int("max_replicas", &f.max_replicas)?,
            ..Default::default()
        };
        fleet::update_deployment(s.pool(), &session.actor(), id, input).await
    }
    .await;
    after("/console/deployments", r, |d| {
        format!(
            "{} now scales between {} and {} replicas.",
            d.name, d.min_replicas, d.max_replicas
        )
    })
}

async fn set_status(s: &ConsoleState, session: &crate::session::Session, id: Uuid, st: DeploymentStatus) -> PageResult {
    let r = fleet::set_deployment_status(s.pool(), &session.actor(), id, st).await;
    after("/console/deployments", r, |d| format!("{} is {}.", d.name, d.status))
}

pub(crate) async fn pause_deployment(
    s: State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    set_status(&s, &session, id, DeploymentStatus::Paused).await
}

pub(crate) async fn resume_deployment(
    s: State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    set_status(&s, &session, id, DeploymentStatus::Active).await
}

pub(crate) async fn delete_deployment(
    s: State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    set_status(&s, &session, id, DeploymentStatus::Deleted).await
}

/// Query of the nodes page.
#[derive(Debug, Deserialize)]
pub(crate) struct NodesQuery {
    status: Option<String>,
    deployment: Option<Uuid>,
}

pub(crate) async fn nodes(State(s): State<ConsoleState>, Op(session): Op, Query(q): Query<NodesQuery>) -> PageResult {
    let status: Option<NodeStatus> = form::parsed("status", &q.status)?;
    let filter = NodeFilter {
        status,
        deployment_id: q.deployment,
        ..Default::default()
    };
    let list = fleet::list_nodes(s.pool(), filter, Some(200)).await?;
    let body = html! {
        h1 { "Nodes" }
        form.filters method="get" action="/console/nodes" {
            label { "Status" select name="status" {
                option value="" { "all but terminated" }
                @for st in NodeStatus::ALL.iter().map(|s| s.as_str()) {
                    option value=(st) selected[q.status.as_deref() == Some(st)] { (st) }
                }
            } }
            @if let Some(d) = q.deployment { input type="hidden" name="deployment" value=(d); }
            button type="submit" { "Filter" }
        }
        @if list.is_empty() {
            (page::empty("No nodes: deployments launch them (see Deployments), and on-prem nodes register with NODE_REGISTRATION_TOKEN."))
        } @else {
            div.table-wrap { table #nodes {
                thead { tr { th { "Node" } th { "Model" } th { "Status" } th { "Where" } th { "GPU" } th { "Capacity" } th { "Load" } th { "Health" } th { "Heartbeat" } } }
                tbody { @for n in &list {
                    tr data-model=[n.model_name.as_deref()] data-status=(n.status.as_str()) {
                        td { a href={"/console/nodes/" (n.id)} { (n.cluster_name.as_deref().unwrap_or("node")) } }
                        td { (n.model_name.as_deref().unwrap_or("–")) }
                        td { (page::badge(n.status.as_str())) }
                        td { (n.provider.as_str()) " · " (n.region_code.as_deref().unwrap_or("–")) }
                        td { (n.gpu_count) "× " (n.gpu_type.as_deref().unwrap_or("?")) }
                        td { (if n.spot_instance { "spot" } else { "on-demand" }) }
                        td.num { (n.running_requests) " running · " (n.waiting_requests) " waiting · " (format!("{:.0}", n.throughput_tokens_per_sec)) " tok/s" }
                        td.num { (format!("{:.2}", n.health_score)) }
                        td { (n.last_heartbeat_at.map(page::ago).unwrap_or_else(|| "never".into())) }
                    }
                } }
            } }
        }
    };
    Ok(page::render(&session, "Nodes", "nodes", body))
}

pub(crate) async fn node(State(s): State<ConsoleState>, Op(session): Op, Path(id): Path<Uuid>) -> PageResult {
    let d = fleet::get_node(s.pool(), id).await?;
    let n = &d.node;
    let logs = fleet::node_logs(s.pool(), id, 0, Some(500)).await?;
    let live = !matches!(n.status, NodeStatus::Terminated);
    let base = format!("/console/nodes/{id}");
    let body = html! {
        p.crumbs { a href="/console/nodes" { "Nodes" } " / " }
        h1 { (n.cluster_name.as_deref().unwrap_or("node")) " " (page::badge(n.status.as_str())) }
        dl.facts {
            dt { "Model" } dd { (n.model_name.as_deref().unwrap_or("–")) }
            dt { "Where" } dd { (n.provider.as_str()) " · " (n.region_code.as_deref().unwrap_or("–")) " · " (n.instance_type.as_deref().unwrap_or("–")) }
            dt { "GPU" } dd { (n.gpu_count) "× " (n.gpu_type.as_deref().unwrap_or("?")) @if let Some(v) = n.vram_total_gb { " · " (v) " GB" } " · " (if n.spot_instance { "spot" } else { "on-demand" }) }
            dt { "Endpoint" } dd { code { (n.endpoint_url.as_deref().unwrap_or("not registered yet")) } }
            dt { "Load" } dd { (n.running_requests) " running, " (n.waiting_requests) " waiting, " (format!("{:.0}", n.throughput_tokens_per_sec)) " tok/s, KV cache " (format!("{:.0} %", n.kv_cache_usage * 100.0)) }
            dt { "Health" } dd { (format!("{:.2}", n.health_score)) " · last heartbeat " (n.last_heartbeat_at.map(page::ago).unwrap_or_else(|| "never".into())) }
            dt { "Created" } dd { (when(n.created_at)) }
            dt { "Id" } dd { code { (n.id) } }
        }
        @if live {
            div.actions {
                @if n.status.as_str() != "draining" {
                    (page::action_button(&session, &format!("{base}/drain"), "Drain", Some("Drain this node? Gateways stop sending it work; the reconciler terminates it when idle."), false))
                }
                (page::action_button(&session, &format!("{base}/terminate"), "Terminate", Some("Terminate this node now? Its cluster is torn down; a deployment replaces it."), true))
            }
        }
        h2 { "Launch log" }
        @if logs.jobs.is_empty() { (page::empty("No provisioning jobs for this node (hand-added nodes have none).")) }
        pre.log #launch-log tabindex="0" aria-live="polite" data-log-url={(base) "/log"} data-after=(logs.next_cursor) data-running=(logs.running) {
            @for l in &logs.lines { (l.at.format("%H:%M:%S")) "  " (l.line) "\n" }
        }
        h2 { "Recent health checks" }
        @if d.health_checks.is_empty() { (page::empty("No health checks recorded yet.")) } @else {
            div.table-wrap { table {
                thead { tr { th { "When" } th { "Status" } th { "Latency" } th { "Error" } } }
                tbody { @for c in &d.health_checks {
                    tr { td { (when(c.checked_at)) } td { (page::badge(c.status.as_str())) } td.num { (c.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default()) } td { (c.error.as_deref().unwrap_or("")) } }
                } }
            } }
        }
    };
    Ok(page::render(&session, "Node", "nodes", body))
}

/// Query of the log follower.
#[derive(Debug, Deserialize)]
pub(crate) struct LogQuery {
    after: Option<i64>,
}

/// `GET /console/nodes/{id}/log?after=N`: the lines after the cursor, as
/// the admin API's `GET /admin/v1/nodes/{id}/logs` answers them (the page's
/// script follows a running launch with it).
pub(crate) async fn node_log(
    State(s): State<ConsoleState>,
    Op(_session): Op,
    Path(id): Path<Uuid>,
    Query(q): Query<LogQuery>,
) -> Result<Json<NodeLogsView>, page::PageError> {
    let logs = fleet::node_logs(s.pool(), id, q.after.unwrap_or(0).max(0), Some(500)).await?;
    Ok(Json(logs.into()))
}

pub(crate) async fn drain_node(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let r = fleet::drain_node(s.pool(), &session.actor(), id).await;
    after(&format!("/console/nodes/{id}"), r, |_| {
        "Draining: gateways stop sending it work; it is terminated when idle.".into()
    })
}

pub(crate) async fn terminate_node(
    State(s): State<ConsoleState>,
    Path(id): Path<Uuid>,
    CsrfForm(session, _): CsrfForm<page::Empty>,
) -> PageResult {
    let r = fleet::terminate_node(s.pool(), s.admin.jobs.as_ref(), &session.actor(), id).await;
    after(&format!("/console/nodes/{id}"), r, |t| match t.job_id {
        Some(_) => "Terminating: its cluster is being torn down (follow the log below).".into(),
        None => "Terminated.".into(),
    })
}
