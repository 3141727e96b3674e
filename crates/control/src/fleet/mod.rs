//! The fleet: the catalog (regions, models, GPU offers), deployments, the
//! operator's side of nodes, and the node lifecycle ([`lifecycle`]) that
//! every part changing a node's status goes through.
//!
//! Like tenancy, every change runs in one transaction that makes the
//! change and records it with [`crosslogic_db::changes`] (its typed event
//! and, when somebody made it, its audit entry). Fleet resources are
//! platform-level, so their events and audit entries carry no tenant.

mod catalog;
mod deployments;
pub mod lifecycle;
mod models;
mod nodes;
mod placement;
mod validate;

pub use catalog::*;
pub use crosslogic_core::decimal::{to_f64, Decimal};
pub use deployments::*;
pub use models::*;
pub use nodes::*;
