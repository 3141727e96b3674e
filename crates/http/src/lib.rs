//! The one HTTP edge of CrossLogic's APIs (`/v1`, `/admin/v1`, `/agent/v1`):
//! one error envelope ([`ApiError`], OpenAI's
//! `{"error": {"message", "type", "param", "code"}}`) with one mapping from
//! [`crosslogic_core::ServiceError`], one JSON body extractor, one query
//! extractor and one path-id extractor whose errors name the field at
//! fault, one bearer-token parser, and the list envelope.
//!
//! The status rule, the same on every API: **400** when the request cannot
//! be read (not JSON, wrong content type), **422** when it can but a value
//! is missing, of the wrong type or out of range (`param` names it), 401
//! without a valid credential, 403 when the credential may not do it, 404
//! for what does not exist, 409 for a conflict with the current state.
//! Inference bodies under `/v1` follow OpenAI and answer 400 for every
//! invalid request (see `crosslogic-gateway`).
//!
//! Invariant: no business rules and no SQL; constant-time token comparison
//! lives in `crosslogic_core::keys`.

pub mod docs;
mod error;
mod extract;
mod list;
pub mod range;

pub use error::{ApiError, ErrorBody, ErrorEnvelope};
pub use extract::{bearer, Body, BodyOrDefault, Id, Query};
pub use list::List;
