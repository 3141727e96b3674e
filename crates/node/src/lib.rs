//! The GPU-node side of CrossLogic.
//!
//! - [`agent`]: the node agent, which waits for the engine, registers the node
//!   with the control plane, heartbeats with the engine's load, reports spot
//!   preemption notices and deregisters on shutdown;
//! - [`sim`]: a vLLM-compatible engine simulator that tests and local
//!   development use in place of a real GPU node.

pub mod agent;
pub mod sim;
