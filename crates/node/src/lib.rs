//! The GPU-node side of CrossLogic.
//!
//! Today this holds [`sim`], a vLLM-compatible engine simulator that tests and
//! local development use in place of a real GPU node. The node agent (which
//! registers a node with the control plane and supervises vLLM) will live here
//! as well.

pub mod sim;
