//! Domain types shared by every CrossLogic crate.
//!
//! Invariant: this crate does no IO (no network, files, clocks or database).
//! Everything here is plain data and pure functions, so it is unit-testable.

pub mod actor;
pub mod billing;
pub mod candidates;
pub mod decimal;
pub mod delivery;
pub mod error;
pub mod events;
pub mod hedge;
pub mod keys;
pub mod limits;
pub mod money;
pub mod placement;
pub mod scaling;
pub mod status;

pub use actor::Actor;
pub use error::ServiceError;
pub use events::{Event, EventKind};
pub use money::{cost_microdollars, request_cost, Femtos, Micros, PricePerMillion, FEMTOS_PER_MICRO};
pub use status::*;
