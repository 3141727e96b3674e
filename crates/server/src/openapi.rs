//! The OpenAPI 3.1 document (`GET /openapi.json`) and its browsable
//! reference (`GET /docs`, Swagger UI built into the binary: no CDN).
//!
//! Every operation comes from its handler's `#[utoipa::path]`, registered
//! with `utoipa_axum::routes!` — the same annotation gives the router its
//! path and method, so a served route is a documented one. This module
//! adds what the whole document shares: its description, the security
//! schemes the operations name ([`crosslogic_http::docs`]) and the tags.

use axum::Router;
use crosslogic_http::docs::{ADMIN_TOKEN, NODE_CREDENTIAL, STRIPE_SIGNATURE, TENANT_KEY};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where the browsable reference is served.
pub const DOCS_PATH: &str = "/docs";

const DESCRIPTION: &str = "\
The CrossLogic control plane: an OpenAI-compatible inference API for tenants \
(`/v1`), the operator's admin API (`/admin/v1`), the node agents' API \
(`/agent/v1`), Stripe's webhook (`/webhooks/stripe`) and the probes.

Every error answers OpenAI's envelope: \
`{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`.";

/// The tags in the order the reference shows them, with what each covers.
const TAGS: &[(&str, &str)] = &[
    (
        "inference",
        "OpenAI-compatible completions and embeddings (use any OpenAI SDK with this server's `/v1` as base URL)",
    ),
    ("models", "The models a key may call"),
    ("usage", "The caller's requests, tokens, cost and latency"),
    ("billing", "The caller's month to date, costs, budget and credits"),
    ("keys", "The tenant's API keys (an `admin` role key)"),
    (
        "notifications",
        "The tenant's webhook, Slack, Discord and email channels and their deliveries",
    ),
    ("admin: tenants", "Tenants (operator)"),
    ("admin: environments", "A tenant's environments"),
    ("admin: keys", "API keys of any tenant"),
    ("admin: catalog", "Regions, models and GPU prices"),
    (
        "admin: deployments",
        "Deployments: the replicas of a model the reconciler keeps alive",
    ),
    ("admin: nodes", "GPU nodes, their drain, termination and launch logs"),
    ("admin: notifications", "Operator and tenant channels, deliveries"),
    (
        "admin: billing",
        "Costs, credits, budgets, Stripe exports and webhooks, revenue",
    ),
    ("admin: usage", "Usage of a tenant or of the platform"),
    ("admin: events", "The event log: every change the platform reports"),
    (
        "agent",
        "What node agents call: register, heartbeat, preemption, deregister",
    ),
    ("webhooks", "Events from Stripe"),
    ("ops", "Liveness, readiness, Prometheus metrics"),
];

/// The document's shared parts; the operations are merged in by the routers.
pub fn base() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("CrossLogic")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .tags(Some(TAGS.iter().map(|(name, about)| {
            TagBuilder::new().name(*name).description(Some(*about)).build()
        })))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |format: &str, about: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format(format)
                .description(Some(about))
                .build(),
        )
    };
    components.add_security_scheme(
        TENANT_KEY,
        bearer("cl_…", "A tenant's API key: `Authorization: Bearer cl_…`."),
    );
    components.add_security_scheme(
        ADMIN_TOKEN,
        bearer("token", "The operator token: `Authorization: Bearer $ADMIN_API_TOKEN`."),
    );
    components.add_security_scheme(
        NODE_CREDENTIAL,
        bearer(
            "cln_…",
            "A node's credential (`cln_…`, issued at registration); to register, the launch \
             token or `NODE_REGISTRATION_TOKEN`.",
        ),
    );
    components.add_security_scheme(
        STRIPE_SIGNATURE,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Stripe-Signature",
            "Stripe's signature of the raw body with the endpoint's signing secret \
             (`STRIPE_WEBHOOK_SECRET`).",
        ))),
    );
    doc
}

/// `GET /openapi.json` and the reference at `/docs`.
pub fn routes(doc: OpenApi) -> Router {
    SwaggerUi::new(DOCS_PATH)
        .url(DOCUMENT_PATH, with_unique_ids(doc))
        .into()
}

/// Operation ids are the handlers' names, which repeat across the APIs
/// (`list_keys` is a tenant's and an operator's): those of the admin and
/// agent APIs get the API's name in front (`admin_list_keys`).
fn with_unique_ids(mut doc: OpenApi) -> OpenApi {
    for (path, item) in doc.paths.paths.iter_mut() {
        let prefix = if path.starts_with("/admin/") {
            "admin_"
        } else if path.starts_with("/agent/") {
            "agent_"
        } else {
            continue;
        };
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            if let Some(id) = op.operation_id.as_mut() {
                id.insert_str(0, prefix);
            }
        }
    }
    doc
}
