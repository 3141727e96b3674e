//! Domain types shared by every CrossLogic crate.
//!
//! Invariant: this crate does no IO (no network, files, clocks or database).
//! Everything here is plain data and pure functions, so it is unit-testable.

pub mod candidates;
pub mod keys;
pub mod limits;
pub mod money;
pub mod placement;
pub mod scaling;
pub mod status;

pub use money::{cost_microdollars, Micros, PricePerMillion};
pub use status::*;
