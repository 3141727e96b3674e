//! Tenancy: tenants, their environments and API keys — the business rules
//! behind the operator's admin API (`crosslogic-control`) and the tenant's
//! self-service routes (`crosslogic-gateway`), which both call these
//! functions, so neither depends on the other.
//!
//! Invariant: no HTTP here and no SQL (all of it is in `crosslogic-db`).
//! Each operation runs in one transaction that makes the change and
//! records it with [`crosslogic_db::changes::record`] — its typed event
//! (`tenant.*`, `environment.*`, `apikey.*`) in the outbox and its
//! `audit_logs` entry — so an event exists exactly when its change
//! committed. The API shapes of these resources are in [`views`].

mod environments;
mod keys;
mod tenants;
mod validate;
pub mod views;

pub use crosslogic_core::{Actor, ServiceError};
pub use environments::*;
pub use keys::*;
pub use tenants::*;
