//! What every operation of the OpenAPI document shares: the error answers
//! (each in the one envelope, [`crate::ErrorEnvelope`]) and the names of
//! the security schemes.

use utoipa::IntoResponses;

use crate::ErrorEnvelope;

/// Security scheme: a tenant's API key (`Authorization: Bearer cl_…`).
pub const TENANT_KEY: &str = "tenant_key";
/// Security scheme: the operator token (`Authorization: Bearer $ADMIN_API_TOKEN`).
pub const ADMIN_TOKEN: &str = "admin_token";
/// Security scheme: a node's credential (`Authorization: Bearer cln_…`, or
/// the on-prem registration token to register).
pub const NODE_CREDENTIAL: &str = "node_credential";
/// Security scheme: Stripe's webhook signature header.
pub const STRIPE_SIGNATURE: &str = "stripe_signature";

/// The errors any authenticated API route may answer.
#[derive(IntoResponses)]
pub enum Errors {
    /// The request cannot be read: not JSON, a wrong content type, a
    /// malformed query string.
    #[response(status = 400, example = json!({"error": {"message": "Failed to parse the request body as JSON: expected value at line 1 column 1.", "type": "invalid_request_error", "param": null, "code": "invalid_request"}}))]
    Malformed(#[to_schema] ErrorEnvelope),
    /// No credential, or an unknown, revoked or expired one.
    #[response(status = 401, example = json!({"error": {"message": "Incorrect API key provided: cl_k3j9x2ab_****.", "type": "authentication_error", "param": null, "code": "invalid_api_key"}}))]
    Unauthorized(#[to_schema] ErrorEnvelope),
    /// The credential may not do this (a role, a suspended account).
    #[response(status = 403, example = json!({"error": {"message": "Managing API keys requires an API key with the `admin` role; this key has the `developer` role.", "type": "permission_error", "param": null, "code": "insufficient_permissions"}}))]
    Forbidden(#[to_schema] ErrorEnvelope),
    /// No such resource (or another tenant's).
    #[response(status = 404, example = json!({"error": {"message": "No such key.", "type": "invalid_request_error", "param": null, "code": "not_found"}}))]
    NotFound(#[to_schema] ErrorEnvelope),
    /// The change conflicts with the current state (a taken name, a
    /// deleted resource).
    #[response(status = 409, example = json!({"error": {"message": "An environment named production already exists.", "type": "invalid_request_error", "param": null, "code": "conflict"}}))]
    Conflict(#[to_schema] ErrorEnvelope),
    /// A value is missing, of the wrong type or out of range (`param`
    /// names it).
    #[response(status = 422, example = json!({"error": {"message": "name: must not be empty.", "type": "invalid_request_error", "param": "name", "code": "invalid_value"}}))]
    Invalid(#[to_schema] ErrorEnvelope),
    /// The server failed (details are logged, not shown).
    #[response(status = 500, example = json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": "internal_error"}}))]
    Internal(#[to_schema] ErrorEnvelope),
    /// Not available right now (disabled, starting, the database away);
    /// `retry-after` says when to retry.
    #[response(status = 503, example = json!({"error": {"message": "the admin API is disabled: set ADMIN_API_TOKEN and restart", "type": "server_error", "param": null, "code": "admin_disabled"}}))]
    Unavailable(#[to_schema] ErrorEnvelope),
}

/// The errors of the OpenAI-compatible inference routes (OpenAI's: every
/// invalid request is a 400).
#[derive(IntoResponses)]
pub enum InferenceErrors {
    /// An invalid request (unreadable JSON, no model, a bad value).
    #[response(status = 400, example = json!({"error": {"message": "you must provide a model parameter", "type": "invalid_request_error", "param": "model", "code": "invalid_request"}}))]
    Invalid(#[to_schema] ErrorEnvelope),
    /// No API key, or an unknown, revoked or expired one.
    #[response(status = 401, example = json!({"error": {"message": "Incorrect API key provided: cl_k3j9x2ab_****.", "type": "authentication_error", "param": null, "code": "invalid_api_key"}}))]
    Unauthorized(#[to_schema] ErrorEnvelope),
    /// A read-only key, or a suspended key, environment or account.
    #[response(status = 403, example = json!({"error": {"message": "This API key is suspended.", "type": "permission_error", "param": null, "code": "key_suspended"}}))]
    Forbidden(#[to_schema] ErrorEnvelope),
    /// The model does not exist, is not allowed or is not served
    /// (`model_not_found`).
    #[response(status = 404, example = json!({"error": {"message": "The model `gpt-5` does not exist or you do not have access to it.", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}))]
    ModelNotFound(#[to_schema] ErrorEnvelope),
    /// A rate limit (`rate_limit_error`, with `x-ratelimit-*` and
    /// `retry-after`), the daily quota or the monthly budget
    /// (`insufficient_quota`).
    #[response(status = 429, example = json!({"error": {"message": "Rate limit reached for requests per minute (key): limit 60; retry after 1 s.", "type": "rate_limit_error", "param": null, "code": "requests_per_min_exceeded"}}))]
    Limited(#[to_schema] ErrorEnvelope),
    /// The server failed.
    #[response(status = 500, example = json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": "internal_error"}}))]
    Internal(#[to_schema] ErrorEnvelope),
    /// The model node failed while answering.
    #[response(status = 502, example = json!({"error": {"message": "The model node failed while answering.", "type": "server_error", "param": null, "code": "upstream_error"}}))]
    Upstream(#[to_schema] ErrorEnvelope),
    /// No node could serve the model right now; retry shortly.
    #[response(status = 503, example = json!({"error": {"message": "No node can serve llama-3-8b right now; retry shortly.", "type": "server_error", "param": null, "code": "model_unavailable"}}))]
    Unavailable(#[to_schema] ErrorEnvelope),
}
