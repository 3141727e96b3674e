//! The fleet admin API over HTTP against a real database: the seeded catalog,
//! exact decimal round trips, deployment validation and lifecycle with its
//! events, and node listing filters. Each test has its own database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "fleet/catalog.rs"]
mod catalog;
#[path = "fleet/deployments.rs"]
mod deployments;
#[path = "fleet/nodes.rs"]
mod nodes;
#[path = "fleet/support.rs"]
mod support;
