//! The node lifecycle: every status change of a node goes through here.
//!
//! ```text
//!                register            engine healthy
//!  launching ─────────────► initializing ─────────────► active ◄──┐
//!      │                        │    engine unhealthy /    │      │ engine
//!      │ launch timed out       │    missed heartbeats     ▼      │ healthy
//!      │ launch failed          └───────────────────► unhealthy ──┘
//!      │                drain / preempted (any of launching … unhealthy)
//!      │                                 ▼
//!      │                              draining ──── terminated (job, agent, reconciler)
//!      ▼                                 │
//!    dead ◄── silent / cluster vanished ─┘   (dead → terminated once torn down)
//! ```
//!
//! [`RULES`] is the whole state machine: each [`Step`] moves a node from one
//! of its allowed statuses to one status, publishes one event and records
//! one health observation, in the transaction of the change. The move is a
//! single conditional UPDATE, so two replicas (two health monitors, an
//! agent and the reconciler) racing on one node make exactly one change
//! and publish exactly one event. A step from a status it does not allow
//! changes nothing and publishes nothing.

use chrono::{DateTime, Utc};
use crosslogic_core::events::NodeEvent;
use crosslogic_core::{Actor, Event, HealthCheckStatus, NodeStatus, ServiceError};
use crosslogic_db::changes;
use crosslogic_db::repo::nodes::{self, Node};
use crosslogic_db::PgPool;
use sqlx::PgConnection;
use uuid::Uuid;

/// Something that happens to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Its agent registered the engine's endpoint (agent API).
    Register,
    /// The engine reported healthy (agent heartbeat).
    EngineHealthy,
    /// The engine reported unhealthy (agent heartbeat).
    EngineUnhealthy,
    /// The agent missed heartbeats (health monitor).
    MissedHeartbeats,
    /// The agent stayed silent past the dead threshold (health monitor).
    Silent,
    /// Stop sending it work; terminated once idle (reconciler, operator).
    Drain,
    /// A spot preemption notice (agent API).
    Preempted,
    /// Its agent never registered within the launch timeout, or its launch
    /// never started (reconciler).
    LaunchTimedOut,
    /// Its cluster no longer exists (reconciler's sweep).
    Vanished,
    /// The operator terminates a node with a cluster: out of routing now,
    /// terminated when the teardown job is done.
    Retire,
    /// Its launch job failed (the job cleans up the cluster).
    LaunchFailed,
    /// It is gone: torn down, deregistered, or had no cluster to tear down.
    Terminate,
}

/// One allowed transition.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub step: Step,
    /// Statuses the step applies to.
    pub from: &'static [NodeStatus],
    /// Status afterwards.
    pub to: NodeStatus,
    /// The event it publishes.
    pub event: fn(NodeEvent) -> Event,
    /// The health observation it records.
    pub health: HealthCheckStatus,
}

use NodeStatus as S;

/// Every status but `terminated`.
const UNTERMINATED: &[NodeStatus] = &[
    S::Launching,
    S::Initializing,
    S::Active,
    S::Unhealthy,
    S::Draining,
    S::Dead,
];
const STARTING: &[NodeStatus] = &[S::Launching, S::Initializing];
const RETIRABLE: &[NodeStatus] = &[S::Launching, S::Initializing, S::Active, S::Unhealthy, S::Dead];

/// The state machine.
pub const RULES: &[Rule] = &[
    // Registration keeps an active, unhealthy or draining node's status
    // (an agent that restarted); launching nodes become initializing.
    Rule {
        step: Step::Register,
        from: NodeStatus::ALIVE,
        to: S::Initializing,
        event: Event::NodeRegistered,
        health: HealthCheckStatus::Healthy,
    },
    Rule {
        step: Step::EngineHealthy,
        from: &[S::Launching, S::Initializing, S::Unhealthy],
        to: S::Active,
        event: Event::NodeActive,
        health: HealthCheckStatus::Healthy,
    },
    Rule {
        step: Step::EngineUnhealthy,
        from: &[S::Initializing, S::Active],
        to: S::Unhealthy,
        event: Event::NodeUnhealthy,
        health: HealthCheckStatus::Unhealthy,
    },
    Rule {
        step: Step::MissedHeartbeats,
        from: &[S::Initializing, S::Active],
        to: S::Unhealthy,
        event: Event::NodeUnhealthy,
        health: HealthCheckStatus::Unhealthy,
    },
    Rule {
        step: Step::Silent,
        from: NodeStatus::HEARTBEATING,
        to: S::Dead,
        event: Event::NodeDead,
        health: HealthCheckStatus::Dead,
    },
    Rule {
        step: Step::Drain,
        from: NodeStatus::DRAINABLE,
        to: S::Draining,
        event: Event::NodeDraining,
        health: HealthCheckStatus::Healthy,
    },
    Rule {
        step: Step::Preempted,
        from: NodeStatus::DRAINABLE,
        to: S::Draining,
        event: Event::NodePreempted,
        health: HealthCheckStatus::Unhealthy,
    },
    Rule {
        step: Step::LaunchTimedOut,
        from: &[S::Launching],
        to: S::Dead,
        event: Event::NodeDead,
        health: HealthCheckStatus::Dead,
    },
    Rule {
        step: Step::Vanished,
        from: NodeStatus::ALIVE,
        to: S::Dead,
        event: Event::NodeDead,
        health: HealthCheckStatus::Dead,
    },
    Rule {
        step: Step::Retire,
        from: RETIRABLE,
        to: S::Draining,
        event: Event::NodeDraining,
        health: HealthCheckStatus::Dead,
    },
    Rule {
        step: Step::LaunchFailed,
        from: STARTING,
        to: S::Terminated,
        event: Event::NodeTerminated,
        health: HealthCheckStatus::Dead,
    },
    Rule {
        step: Step::Terminate,
        from: UNTERMINATED,
        to: S::Terminated,
        event: Event::NodeTerminated,
        health: HealthCheckStatus::Dead,
    },
];

impl Step {
    /// This step's rule.
    pub fn rule(self) -> &'static Rule {
        // Every step has exactly one rule (tested below).
        RULES.iter().find(|r| r.step == self).unwrap_or(&RULES[RULES.len() - 1])
    }

    /// Whether a node in `status` would be moved by this step.
    pub fn applies_to(self, status: NodeStatus) -> bool {
        let rule = self.rule();
        status != rule.to && rule.from.contains(&status)
    }
}

/// The payload of a node status event.
fn payload(node: &Node, detail: &str) -> NodeEvent {
    NodeEvent {
        node_id: node.id,
        cluster_name: node.cluster_name.clone(),
        deployment_id: node.deployment_id,
        provider: node.provider,
        model: node.model_name.clone(),
        region: node.region_code.clone(),
        endpoint_url: node.endpoint_url.clone(),
        status: node.status,
        detail: Some(detail.to_owned()),
    }
}

/// Publishes the event of `rule` for `node` (already moved) and records
/// its health observation; audited when an `actor` made the change.
async fn changed(
    tx: &mut PgConnection,
    node: &Node,
    rule: &Rule,
    detail: &str,
    actor: Option<&Actor>,
) -> Result<(), ServiceError> {
    let event = (rule.event)(payload(node, detail));
    let stored = match actor {
        Some(actor) => changes::record(&mut *tx, actor, &event).await?,
        None => changes::publish(&mut *tx, &event).await?,
    };
    nodes::record_health_check(&mut *tx, node.id, rule.health, None, Some(detail), &stored.payload).await?;
    Ok(())
}

/// Applies `step` to node `id` inside `tx`; `None` when its status does not
/// allow the step (nothing changed, nothing published).
pub async fn apply(
    tx: &mut PgConnection,
    id: Uuid,
    step: Step,
    detail: &str,
    actor: Option<&Actor>,
) -> Result<Option<Node>, ServiceError> {
    let rule = step.rule();
    let moved = nodes::transition(&mut *tx, id, rule.to, rule.from).await?;
    if let Some(node) = &moved {
        changed(tx, node, rule, detail, actor).await?;
    }
    Ok(moved)
}

/// [`apply`] in a transaction of its own, for a change the platform makes.
pub async fn transition(pool: &PgPool, id: Uuid, step: Step, detail: &str) -> Result<Option<Node>, ServiceError> {
    in_own_tx(pool, id, step, detail, None).await
}

/// [`apply`] in a transaction of its own, for a change `actor` asked for
/// (audited).
pub async fn transition_by(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    step: Step,
    detail: &str,
) -> Result<Option<Node>, ServiceError> {
    in_own_tx(pool, id, step, detail, Some(actor)).await
}

async fn in_own_tx(
    pool: &PgPool,
    id: Uuid,
    step: Step,
    detail: &str,
    actor: Option<&Actor>,
) -> Result<Option<Node>, ServiceError> {
    let mut tx = crosslogic_db::begin(pool).await?;
    let moved = apply(&mut tx, id, step, detail, actor).await?;
    crosslogic_db::commit(tx).await?;
    Ok(moved)
}

/// Records a registration inside `tx`: the endpoint, `initializing` for a
/// node that was starting, and `node.registered`. A dead or terminated node
/// cannot register.
pub async fn register(
    tx: &mut PgConnection,
    id: Uuid,
    endpoint_url: &str,
    internal_ip: Option<&str>,
    external_id: Option<&str>,
) -> Result<Node, ServiceError> {
    let node = nodes::register(&mut *tx, id, endpoint_url, internal_ip, external_id)
        .await
        .map_err(|e| match e {
            crosslogic_db::DbError::NotFound { .. } => ServiceError::State("the node is dead or terminated".into()),
            other => other.into(),
        })?;
    changed(tx, &node, Step::Register.rule(), "registered", None).await?;
    Ok(node)
}

/// Applies a silence step ([`Step::MissedHeartbeats`] or [`Step::Silent`])
/// to every node whose last heartbeat is older than `cutoff`, in one
/// atomic UPDATE; returns the nodes moved.
pub async fn mark_silent(
    tx: &mut PgConnection,
    step: Step,
    cutoff: DateTime<Utc>,
    detail: &str,
) -> Result<Vec<Node>, ServiceError> {
    let rule = step.rule();
    let moved = nodes::mark_stale(&mut *tx, rule.from, rule.to, cutoff).await?;
    for node in &moved {
        changed(tx, node, rule, detail, None).await?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[Step] = &[
        Step::Register,
        Step::EngineHealthy,
        Step::EngineUnhealthy,
        Step::MissedHeartbeats,
        Step::Silent,
        Step::Drain,
        Step::Preempted,
        Step::LaunchTimedOut,
        Step::Vanished,
        Step::Retire,
        Step::LaunchFailed,
        Step::Terminate,
    ];

    #[test]
    fn every_step_has_exactly_one_rule() {
        for step in STEPS {
            assert_eq!(RULES.iter().filter(|r| r.step == *step).count(), 1, "{step:?}");
            assert_eq!(step.rule().step, *step);
        }
        assert_eq!(RULES.len(), STEPS.len());
    }

    #[test]
    fn nothing_leaves_terminated_and_nothing_revives_the_dead() {
        for rule in RULES {
            assert!(!rule.from.contains(&S::Terminated), "{:?}", rule.step);
            if rule.from.contains(&S::Dead) {
                assert!(
                    matches!(rule.to, S::Terminated | S::Draining),
                    "{:?} revives a dead node",
                    rule.step
                );
            }
        }
    }

    #[test]
    fn each_rule_publishes_the_event_of_its_target() {
        let node = NodeEvent {
            node_id: Uuid::nil(),
            cluster_name: None,
            deployment_id: None,
            provider: crosslogic_core::Provider::Local,
            model: None,
            region: None,
            endpoint_url: None,
            status: S::Active,
            detail: None,
        };
        for rule in RULES {
            let kind = (rule.event)(node.clone()).kind();
            assert_eq!(kind.family(), "node", "{:?}", rule.step);
            let expected = match rule.to {
                S::Active => "node.active",
                S::Unhealthy => "node.unhealthy",
                S::Dead => "node.dead",
                S::Terminated => "node.terminated",
                S::Initializing => "node.registered",
                S::Draining if rule.step == Step::Preempted => "node.preempted",
                S::Draining => "node.draining",
                S::Launching => unreachable!("nothing moves a node back to launching"),
            };
            assert_eq!(kind.as_str(), expected, "{:?}", rule.step);
        }
    }

    #[test]
    fn a_step_applies_only_from_its_statuses() {
        assert!(Step::Drain.applies_to(S::Active));
        assert!(!Step::Drain.applies_to(S::Draining), "already there");
        assert!(!Step::Drain.applies_to(S::Dead));
        assert!(Step::Terminate.applies_to(S::Dead));
        assert!(!Step::Terminate.applies_to(S::Terminated));
        assert!(
            !Step::LaunchTimedOut.applies_to(S::Initializing),
            "it registered meanwhile"
        );
    }
}
