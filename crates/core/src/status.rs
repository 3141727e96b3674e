//! Typed status and kind enums, one per CHECK-constrained text column.
//!
//! The string form of each variant is exactly the value stored in PostgreSQL;
//! `crates/db/tests/enums.rs` proves every value is accepted by its CHECK
//! constraint and that the constraint rejects anything else.

use std::fmt;
use std::str::FromStr;

/// Returned when a string is not one of an enum's allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: expected one of {allowed}")]
pub struct ParseEnumError {
    /// Human name of the enum ("tenant status").
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// Comma-separated allowed values.
    pub allowed: String,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        // By hand: the derive cannot read `serde(rename)` through the macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("A ", $kind, ".")))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value stored in the database and used on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError {
                        kind: $kind,
                        value: s.to_owned(),
                        allowed: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseEnumError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

string_enum!(
    /// `tenants.status`.
    TenantStatus, "tenant status" { Active => "active", Suspended => "suspended", Deleted => "deleted" }
);
string_enum!(
    /// `tenants.suspension_reason`: who may lift a suspension.
    SuspensionReason, "suspension reason" { Operator => "operator", NonPayment => "non_payment" }
);
string_enum!(
    /// `tenants.billing_plan`.
    BillingPlan, "billing plan" { Serverless => "serverless", Reserved => "reserved", Enterprise => "enterprise" }
);
string_enum!(
    /// `environments.status`.
    EnvironmentStatus, "environment status" { Active => "active", Suspended => "suspended" }
);
string_enum!(
    /// `api_keys.role`: what a key may do under `/v1`.
    ApiKeyRole, "API key role" { Admin => "admin", Developer => "developer", ReadOnly => "read-only" }
);
string_enum!(
    /// `api_keys.status`.
    ApiKeyStatus, "API key status" { Active => "active", Suspended => "suspended", Revoked => "revoked" }
);
string_enum!(
    /// `regions.status`.
    RegionStatus, "region status" { Active => "active", Degraded => "degraded", Maintenance => "maintenance", Offline => "offline" }
);
string_enum!(
    /// `models.type`.
    ModelType, "model type" { Completion => "completion", Chat => "chat", Embedding => "embedding" }
);
string_enum!(
    /// `models.status`.
    ModelStatus, "model status" { Active => "active", Deprecated => "deprecated", Beta => "beta" }
);
string_enum!(
    /// Where a node runs: `nodes.provider`, `gpu_prices.provider`, `deployments.provider`.
    Provider, "provider" { Aws => "aws", Gcp => "gcp", Azure => "azure", Oci => "oci", OnPrem => "on-prem", Local => "local" }
);
string_enum!(
    /// `nodes.status`: the node lifecycle.
    NodeStatus, "node status" {
        Launching => "launching", Initializing => "initializing", Active => "active",
        Draining => "draining", Unhealthy => "unhealthy", Dead => "dead", Terminated => "terminated"
    }
);
impl NodeStatus {
    /// Statuses a node can be drained from: it serves, or will serve, and
    /// is not already leaving.
    pub const DRAINABLE: &'static [NodeStatus] = &[
        NodeStatus::Launching,
        NodeStatus::Initializing,
        NodeStatus::Active,
        NodeStatus::Unhealthy,
    ];
    /// Registered nodes that count as a deployment's replicas (routable
    /// now or expected to be again): initializing, active, unhealthy.
    pub const LIVE: &'static [NodeStatus] = &[NodeStatus::Initializing, NodeStatus::Active, NodeStatus::Unhealthy];
    /// Nodes whose machine should exist: everything from launching to
    /// draining (dead and terminated nodes are gone or going).
    pub const ALIVE: &'static [NodeStatus] = &[
        NodeStatus::Launching,
        NodeStatus::Initializing,
        NodeStatus::Active,
        NodeStatus::Unhealthy,
        NodeStatus::Draining,
    ];
    /// Nodes whose agent is expected to heartbeat (registered, not gone).
    pub const HEARTBEATING: &'static [NodeStatus] = &[
        NodeStatus::Initializing,
        NodeStatus::Active,
        NodeStatus::Unhealthy,
        NodeStatus::Draining,
    ];

    /// Whether the node counts as a live replica ([`NodeStatus::LIVE`]).
    pub fn is_live(self) -> bool {
        NodeStatus::LIVE.contains(&self)
    }
}

string_enum!(
    /// `usage_records.status`: how a served request ended.
    UsageStatus, "usage status" { Completed => "completed", Failed => "failed", Cancelled => "cancelled" }
);
string_enum!(
    /// `billing_events.event_type`.
    BillingEventType, "billing event type" { Usage => "usage", Subscription => "subscription", Credit => "credit", Refund => "refund" }
);
string_enum!(
    /// `billing_events.status`.
    BillingEventStatus, "billing event status" { Pending => "pending", Processed => "processed", Failed => "failed" }
);
string_enum!(
    /// `credits.credit_type`.
    CreditType, "credit type" { SignupBonus => "signup_bonus", Referral => "referral", Promotional => "promotional", MonthlyFree => "monthly_free" }
);
string_enum!(
    /// `reservations.status`.
    ReservationStatus, "reservation status" { Pending => "pending", Active => "active", Expired => "expired", Cancelled => "cancelled" }
);
string_enum!(
    /// `health_checks.status`.
    HealthCheckStatus, "health check status" { Healthy => "healthy", Unhealthy => "unhealthy", Dead => "dead" }
);
string_enum!(
    /// `events.severity`.
    EventSeverity, "event severity" { Info => "info", Warning => "warning", Critical => "critical" }
);
string_enum!(
    /// `deployments.strategy`: how replicas are placed across regions.
    DeploymentStrategy, "deployment strategy" { Spread => "spread", Packed => "packed" }
);
string_enum!(
    /// `deployments.capacity_policy`: how a deployment buys GPU capacity
    /// (see `crate::hedge`).
    CapacityPolicy, "capacity policy" { OnDemand => "on_demand", Spot => "spot", Hedged => "hedged" }
);
string_enum!(
    /// `deployments.status`.
    DeploymentStatus, "deployment status" { Active => "active", Paused => "paused", Deleted => "deleted" }
);
string_enum!(
    /// `deployment_nodes.status`.
    DeploymentNodeStatus, "deployment node status" { Healthy => "healthy", Unhealthy => "unhealthy", Draining => "draining" }
);
string_enum!(
    /// `notification_config.channel`, `notification_deliveries.channel`.
    NotificationChannel, "notification channel" { Discord => "discord", Slack => "slack", Email => "email", Webhook => "webhook" }
);
string_enum!(
    /// `notification_deliveries.status`.
    DeliveryStatus, "delivery status" { Pending => "pending", Sent => "sent", Failed => "failed", Retry => "retry" }
);

string_enum!(
    /// `notification_attempts.outcome`: what one delivery attempt came to.
    AttemptOutcome, "attempt outcome" { Sent => "sent", Retry => "retry", Failed => "failed" }
);

string_enum!(
    /// `provision_jobs.kind`.
    ProvisionJobKind, "provision job kind" { Launch => "launch", Terminate => "terminate" }
);
string_enum!(
    /// `provision_jobs.status`.
    ProvisionJobStatus, "provision job status" { Running => "running", Succeeded => "succeeded", Failed => "failed" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_string_form() {
        for s in NodeStatus::ALL {
            assert_eq!(s.as_str().parse::<NodeStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!("read-only".parse::<ApiKeyRole>().unwrap(), ApiKeyRole::ReadOnly);
        assert_eq!("on-prem".parse::<Provider>().unwrap(), Provider::OnPrem);
    }

    #[test]
    fn unknown_value_error_names_the_allowed_values() {
        let err = "sleepy".parse::<TenantStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid tenant status \"sleepy\": expected one of active, suspended, deleted"
        );
    }
}
