//! The control plane: the operator's admin API ([`admin`]) over the
//! business rules of [`crosslogic_tenancy`] (tenants, environments, keys)
//! and [`fleet`] (regions, models, GPU catalog, deployments, nodes, and the
//! node lifecycle every status change goes through); the node agent's API
//! ([`agent`]); the health monitor ([`health`]); provisioners
//! ([`provision`]: `local`, `skypilot`, and the JuiceFS model store check)
//! whose launches and teardowns run as tracked background [`jobs`]; and the
//! deployments reconciler ([`reconcile`]).
//!
//! Invariant: handlers (in [`admin`] and [`agent`]) only extract, call a
//! function that knows nothing of HTTP, and answer a view type; every
//! change is written together with its `events` outbox row (and, when
//! somebody made it, its `audit_logs` entry) in one transaction through
//! `crosslogic_db::changes`. No SQL here: all of it lives in
//! `crosslogic-db`.

pub mod admin;
pub mod agent;
pub mod demo;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod provision;
pub mod reconcile;
