//! The control plane: the operator's admin API and the business rules
//! behind it — [`tenancy`] (tenants, environments, API keys) and [`fleet`]
//! (regions, models, GPU catalog, deployments, nodes).
//!
//! Invariant: handlers (in [`admin`]) only extract, call a function of
//! [`tenancy`] that knows nothing of HTTP, and map the result; every change
//! is written together with its `events` outbox row and `audit_logs` entry
//! in one transaction. No SQL here: all of it lives in `crosslogic-db`.

pub mod admin;
pub mod agent;
pub mod error;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod provision;
pub mod reconcile;
pub mod tenancy;

pub use error::ServiceError;
