//! The catalogue of domain events: every event the platform publishes to
//! its `events` outbox, with its name, severity, payload type and emitter.
//!
//! Event names and payloads are a public contract (tenants and operators
//! receive them through notification channels and signed webhooks), so
//! they exist only here: [`EventKind`] names every type, [`Event`] binds
//! each kind to its payload type, and `docs/EVENTS.md` lists them — a test
//! checks that the document and this module agree. Adding a field is
//! compatible; renaming or removing one is not.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{
    ApiKeyRole, ApiKeyStatus, BillingPlan, CreditType, DeploymentStatus, DeploymentStrategy, EnvironmentStatus,
    EventSeverity, ModelStatus, ModelType, NodeStatus, NotificationChannel, ParseEnumError, Provider, RegionStatus,
    SuspensionReason, TenantStatus,
};

/// What every payload tells besides its own fields.
pub trait EventPayload: Serialize {
    /// The tenant the event concerns (its own channels receive it); `None`
    /// for platform events, which only the operator's channels receive.
    fn tenant_id(&self) -> Option<Uuid> {
        None
    }

    /// The resource that changed, as `(type, id)`, for the audit log.
    fn resource(&self) -> (&'static str, String);
}

macro_rules! events {
    ($( $variant:ident => $name:literal, $payload:ty, $severity:ident, $emitter:literal; )+) => {
        /// Every event type, by its wire name (`tenant.created`, …).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $(#[serde(rename = $name)] $variant),+
        }

        impl EventKind {
            /// Every kind, in catalogue order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),+];

            /// The name stored in `events.event_type` and sent to receivers.
            pub const fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name),+ }
            }

            /// How much an operator should care.
            pub const fn severity(self) -> EventSeverity {
                match self { $(EventKind::$variant => EventSeverity::$severity),+ }
            }

            /// Which part of the platform publishes it, and when.
            pub const fn emitter(self) -> &'static str {
                match self { $(EventKind::$variant => $emitter),+ }
            }
        }

        impl FromStr for EventKind {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(EventKind::$variant),)+
                    _ => Err(ParseEnumError {
                        kind: "event type",
                        value: s.to_owned(),
                        allowed: [$($name),+].join(", "),
                    }),
                }
            }
        }

        /// A domain event: its kind and the payload that kind carries.
        /// Serialised as `{"type": "<name>", "payload": {…}}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "payload")]
        pub enum Event {
            $(#[serde(rename = $name)] $variant($payload)),+
        }

        impl Event {
            /// The event's kind.
            pub fn kind(&self) -> EventKind {
                match self { $(Event::$variant(_) => EventKind::$variant),+ }
            }

            /// The tenant it concerns (`None` = a platform event).
            pub fn tenant_id(&self) -> Option<Uuid> {
                match self { $(Event::$variant(p) => p.tenant_id()),+ }
            }

            /// The resource that changed, for the audit log.
            pub fn resource(&self) -> (&'static str, String) {
                match self { $(Event::$variant(p) => p.resource()),+ }
            }

            /// The payload as stored in `events.payload`.
            pub fn payload(&self) -> Value {
                let v = match self { $(Event::$variant(p) => serde_json::to_value(p)),+ };
                // Payloads are plain structs of strings, numbers and maps:
                // serialising them cannot fail.
                v.unwrap_or(Value::Null)
            }
        }
    };
}

events! {
    TenantCreated => "tenant.created", TenantEvent, Info, "tenancy: a tenant was created (admin API)";
    TenantUpdated => "tenant.updated", TenantEvent, Info, "tenancy: a tenant's fields changed (admin API)";
    TenantSuspended => "tenant.suspended", TenantEvent, Warning, "tenancy: a tenant was suspended (admin API); its keys stop working";
    TenantActivated => "tenant.activated", TenantEvent, Info, "tenancy: a suspended tenant was reactivated (admin API)";
    TenantDeleted => "tenant.deleted", TenantEvent, Warning, "tenancy: a tenant was deleted (admin API)";
    EnvironmentCreated => "environment.created", EnvironmentEvent, Info, "tenancy: an environment was created (admin API)";
    EnvironmentUpdated => "environment.updated", EnvironmentEvent, Info, "tenancy: an environment's limits or models changed (admin API)";
    EnvironmentSuspended => "environment.suspended", EnvironmentEvent, Warning, "tenancy: an environment was suspended (admin API); its keys stop working";
    EnvironmentActivated => "environment.activated", EnvironmentEvent, Info, "tenancy: an environment was reactivated (admin API)";
    EnvironmentDeleted => "environment.deleted", EnvironmentEvent, Warning, "tenancy: an environment and its keys were deleted (admin API)";
    ApiKeyCreated => "apikey.created", ApiKeyEvent, Info, "tenancy: a key was created (admin API, or `POST /v1/keys`)";
    ApiKeyUpdated => "apikey.updated", ApiKeyEvent, Info, "tenancy: a key's name, role, limits or expiry changed (admin API)";
    ApiKeySuspended => "apikey.suspended", ApiKeyEvent, Warning, "tenancy: a key was suspended (admin API)";
    ApiKeyActivated => "apikey.activated", ApiKeyEvent, Info, "tenancy: a suspended key was reactivated (admin API)";
    ApiKeyRevoked => "apikey.revoked", ApiKeyEvent, Warning, "tenancy: a key was revoked, for good (admin API, or `POST /v1/keys/{id}/revoke`)";
    RegionUpdated => "region.updated", RegionEvent, Info, "fleet catalog: a region was created or replaced (admin API)";
    ModelUpdated => "model.updated", ModelEvent, Info, "fleet catalog: a model was created or replaced (admin API)";
    ModelDeprecated => "model.deprecated", ModelEvent, Info, "fleet catalog: a model was deprecated (admin API)";
    GpuUpdated => "gpu.updated", GpuEvent, Info, "fleet catalog: a GPU type's offer at a provider was created or replaced (admin API)";
    DeploymentCreated => "deployment.created", DeploymentEvent, Info, "fleet: a deployment was created (admin API)";
    DeploymentUpdated => "deployment.updated", DeploymentUpdated, Info, "fleet: a deployment's bounds, strategy, GPU or capacity policy changed (admin API)";
    DeploymentPaused => "deployment.paused", DeploymentEvent, Info, "fleet: a deployment was paused (admin API)";
    DeploymentResumed => "deployment.resumed", DeploymentEvent, Info, "fleet: a paused deployment was resumed (admin API)";
    DeploymentDeleted => "deployment.deleted", DeploymentEvent, Warning, "fleet: a deployment was deleted (admin API); its nodes drain";
    DeploymentScaled => "deployment.scaled", DeploymentScaled, Info, "reconciler: replicas were launched or drained to follow load and bounds";
    NodeLaunched => "node.launched", NodeLaunched, Info, "provisioning job: a node's machine was launched; its agent registers next";
    NodeRegistered => "node.registered", NodeEvent, Info, "agent API: a node's agent registered its engine";
    NodeActive => "node.active", NodeEvent, Info, "agent API: the engine reports healthy; the node takes traffic";
    NodeUnhealthy => "node.unhealthy", NodeEvent, Warning, "agent API (engine unhealthy) or health monitor (missed heartbeats): routing stops";
    NodeDead => "node.dead", NodeEvent, Warning, "health monitor (silent too long) or reconciler (launch timeout, cluster vanished): it is replaced";
    NodeDraining => "node.draining", NodeEvent, Info, "reconciler (scale-down, deleted deployment) or operator (drain, terminate): routing stops";
    NodePreempted => "node.preempted", NodeEvent, Warning, "agent API: the cloud gave a spot preemption notice; the node drains and is replaced";
    NodeTerminated => "node.terminated", NodeEvent, Info, "provisioning job, agent API (deregistered) or reconciler: the node is gone";
    NodeLaunchFailed => "node.launch_failed", NodeLaunchFailed, Warning, "provisioning job: a launch failed (the reconciler backs off and tries the next region or GPU)";
    DeploymentDegraded => "deployment.degraded", DeploymentDegraded, Warning, "reconciler: a deployment stayed below its minimum replicas longer than DEPLOYMENT_DEGRADED_AFTER";
    QuotaWarning => "quota.warning", QuotaEvent, Warning, "usage watcher: an environment used 80 % of its daily token quota (once a day)";
    QuotaExhausted => "quota.exhausted", QuotaEvent, Critical, "usage watcher: an environment used all of its daily token quota; requests are refused until midnight UTC (once a day)";
    KeyExpiring => "key.expiring", KeyExpiring, Warning, "key watcher: an API key expires within KEY_EXPIRY_WARNING (once per key)";
    ChannelCreated => "notification.channel_created", ChannelEvent, Info, "notification settings: a channel was created (admin API, or `POST /v1/notifications/channels`)";
    ChannelUpdated => "notification.channel_updated", ChannelEvent, Info, "notification settings: a channel's destination, filter, state or signing secret changed";
    ChannelDeleted => "notification.channel_deleted", ChannelEvent, Info, "notification settings: a channel was deleted";
    ChannelTest => "notification.test", ChannelTest, Info, "notification settings: a test send asked for through the API; sent to that channel only, at once, never queued";
    ChannelDisabled => "notification.channel_disabled", ChannelDisabled, Warning, "notification delivery: a channel answered that it is gone (410, a deleted Discord or Slack webhook) and was disabled";
    CreditGranted => "billing.credit_granted", CreditGranted, Info, "billing: the operator granted a credit (admin API), or a new tenant got BILLING_SIGNUP_CREDIT";
    BudgetUpdated => "billing.budget_updated", BudgetEvent, Info, "billing: a tenant's monthly budget was set, changed or removed (admin API)";
    BudgetWarning => "billing.budget_warning", BudgetEvent, Warning, "budget watcher: a tenant spent 80 % of its monthly budget (once a month)";
    BudgetExceeded => "billing.budget_exceeded", BudgetEvent, Critical, "budget watcher: a tenant spent its whole monthly budget (once a month); with a hard stop its requests are refused until the budget is raised or the month turns";
    ExportFailed => "billing.export_failed", ExportFailed, Critical, "Stripe export: a tenant-hour's usage could not be sent to Stripe and never will be (refused, or older than Stripe's 35-day window)";
    PaymentFailed => "payment.failed", PaymentEvent, Warning, "Stripe webhook: an invoice payment failed (invoice.payment_failed); the tenant is suspended if it stays unpaid past BILLING_GRACE_PERIOD";
    PaymentSucceeded => "payment.succeeded", PaymentEvent, Info, "Stripe webhook: an invoice was paid (invoice.paid); a tenant suspended for non-payment is reactivated";
    SubscriptionDeleted => "billing.subscription_deleted", SubscriptionDeleted, Warning, "Stripe webhook: a tenant's Stripe subscription ended (customer.subscription.deleted)";
}

impl EventKind {
    /// The kinds of one family (`tenant`, `node`, …: the part before the dot).
    pub fn family(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or("")
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// Reads an event back from its stored type name and payload.
    pub fn from_stored(event_type: &str, payload: Value) -> Result<Event, serde_json::Error> {
        let mut doc = Map::new();
        doc.insert("type".into(), Value::String(event_type.to_owned()));
        doc.insert("payload".into(), payload);
        serde_json::from_value(Value::Object(doc))
    }

    /// Its severity (that of its kind).
    pub fn severity(&self) -> EventSeverity {
        self.kind().severity()
    }
}

/// Payload of `tenant.*`: the tenant as it is after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantEvent {
    pub tenant_id: Uuid,
    pub name: String,
    pub email: String,
    pub status: TenantStatus,
    pub billing_plan: BillingPlan,
    /// Why a suspended tenant is suspended: `operator` or `non_payment`
    /// (present on `tenant.suspended` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<SuspensionReason>,
}

impl EventPayload for TenantEvent {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("tenant", self.tenant_id.to_string())
    }
}

/// Payload of `environment.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentEvent {
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    pub name: String,
    pub status: EnvironmentStatus,
}

impl EventPayload for EnvironmentEvent {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("environment", self.environment_id.to_string())
    }
}

/// Payload of `apikey.*` (never the secret or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyEvent {
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    pub key_id: Uuid,
    /// `cl_xxxxxxxx`: identifies the key without revealing it.
    pub key_prefix: String,
    pub name: String,
    pub role: ApiKeyRole,
    pub status: ApiKeyStatus,
}

impl EventPayload for ApiKeyEvent {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("api_key", self.key_id.to_string())
    }
}

/// Payload of `region.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionEvent {
    pub code: String,
    pub status: RegionStatus,
    pub cloud_providers: Vec<Provider>,
    /// The region's price factor in thousandths (1.1 → 1100).
    pub cost_multiplier_milli: i32,
}

impl EventPayload for RegionEvent {
    fn resource(&self) -> (&'static str, String) {
        ("region", self.code.clone())
    }
}

/// Payload of `model.updated` and `model.deprecated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEvent {
    pub name: String,
    #[serde(rename = "type")]
    pub model_type: ModelType,
    pub status: ModelStatus,
    pub price_input_microdollars_per_million: i64,
    pub price_output_microdollars_per_million: i64,
}

impl EventPayload for ModelEvent {
    fn resource(&self) -> (&'static str, String) {
        ("model", self.name.clone())
    }
}

/// Payload of `gpu.updated`: one GPU type's offer at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuEvent {
    pub gpu_type: String,
    pub provider: Provider,
    pub vram_gb: i32,
    pub on_demand_microdollars_per_hour: i64,
    /// `None`: no spot offer.
    pub spot_microdollars_per_hour: Option<i64>,
    pub available: bool,
}

impl EventPayload for GpuEvent {
    fn resource(&self) -> (&'static str, String) {
        ("gpu_offer", format!("{}/{}", self.gpu_type, self.provider))
    }
}

/// Payload of `deployment.created`, `.paused`, `.resumed`, `.deleted`: the
/// deployment as it is after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentEvent {
    pub deployment_id: Uuid,
    pub name: String,
    pub model_name: String,
    pub status: DeploymentStatus,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub strategy: DeploymentStrategy,
    /// `None` = any provider.
    pub provider: Option<String>,
    /// `None` = any region.
    pub region: Option<String>,
    /// A GPU type or `auto`.
    pub gpu_type: String,
    pub gpu_count: Option<i32>,
    pub use_spot: bool,
    /// `on_demand`, `spot` or `hedged`.
    pub capacity_policy: crate::CapacityPolicy,
}

impl EventPayload for DeploymentEvent {
    fn resource(&self) -> (&'static str, String) {
        ("deployment", self.deployment_id.to_string())
    }
}

/// Payload of `deployment.updated`: the deployment after the change, and
/// the fields that changed with their new values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentUpdated {
    #[serde(flatten)]
    pub deployment: DeploymentEvent,
    pub changes: Map<String, Value>,
}

impl EventPayload for DeploymentUpdated {
    fn resource(&self) -> (&'static str, String) {
        self.deployment.resource()
    }
}

/// What the reconciler did to a deployment's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleAction {
    /// New replicas were launched.
    Launch,
    /// Replicas were drained (they are terminated once idle).
    Drain,
}

/// Payload of `deployment.scaled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentScaled {
    pub deployment_id: Uuid,
    /// The deployment's name.
    pub deployment: String,
    pub action: ScaleAction,
    /// How many replicas were launched or drained.
    pub count: u32,
    /// Live replicas before the action.
    pub live: u32,
    /// Replicas still launching before the action.
    pub launching: u32,
    pub min: i32,
    pub max: i32,
}

impl EventPayload for DeploymentScaled {
    fn resource(&self) -> (&'static str, String) {
        ("deployment", self.deployment_id.to_string())
    }
}

/// Payload of `node.launched`: where the new node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLaunched {
    pub node_id: Uuid,
    pub cluster_name: String,
    pub deployment_id: Option<Uuid>,
    pub provider: Provider,
    /// Region code; `None` for local nodes without one.
    pub region: Option<String>,
    pub gpu_type: Option<String>,
    pub gpu_count: u32,
    pub spot: bool,
    pub model: String,
    /// The provisioning job whose log tells the launch.
    pub job_id: Uuid,
}

impl EventPayload for NodeLaunched {
    fn resource(&self) -> (&'static str, String) {
        ("node", self.node_id.to_string())
    }
}

/// Payload of the node status events (`node.registered`, `.active`,
/// `.unhealthy`, `.dead`, `.draining`, `.preempted`, `.terminated`): the
/// node after the change and why it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub node_id: Uuid,
    pub cluster_name: Option<String>,
    pub deployment_id: Option<Uuid>,
    pub provider: Provider,
    pub model: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub status: NodeStatus,
    /// Why: `no heartbeat`, `scaled down by the reconciler`, the notice text…
    pub detail: Option<String>,
}

impl EventPayload for NodeEvent {
    fn resource(&self) -> (&'static str, String) {
        ("node", self.node_id.to_string())
    }
}

/// Payload of `node.launch_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLaunchFailed {
    pub node_id: Uuid,
    pub cluster_name: String,
    pub deployment_id: Option<Uuid>,
    pub provider: Provider,
    pub region: Option<String>,
    pub gpu_type: Option<String>,
    pub spot: bool,
    pub model: String,
    /// The provisioning job whose log tells what happened.
    pub job_id: Uuid,
    /// Why the launch failed.
    pub error: String,
}

impl EventPayload for NodeLaunchFailed {
    fn resource(&self) -> (&'static str, String) {
        ("node", self.node_id.to_string())
    }
}

/// Payload of `deployment.degraded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentDegraded {
    pub deployment_id: Uuid,
    pub name: String,
    pub model_name: String,
    /// Live replicas now.
    pub live: u32,
    pub min_replicas: i32,
    /// Since when it has been below its minimum.
    pub below_min_since: DateTime<Utc>,
}

impl EventPayload for DeploymentDegraded {
    fn resource(&self) -> (&'static str, String) {
        ("deployment", self.deployment_id.to_string())
    }
}

/// Payload of `quota.warning` and `quota.exhausted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaEvent {
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    /// The environment's name.
    pub environment: String,
    /// The UTC day the quota is for.
    pub day: NaiveDate,
    pub used_tokens: i64,
    pub quota_tokens: i64,
    /// `used_tokens` as a whole percentage of the quota.
    pub percent: i64,
}

impl EventPayload for QuotaEvent {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("environment", self.environment_id.to_string())
    }
}

/// Payload of `key.expiring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyExpiring {
    pub tenant_id: Uuid,
    pub environment_id: Uuid,
    pub key_id: Uuid,
    pub key_prefix: String,
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

impl EventPayload for KeyExpiring {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("api_key", self.key_id.to_string())
    }
}

/// Payload of `notification.channel_created`, `_updated`, `_deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEvent {
    pub channel_id: Uuid,
    /// The tenant whose channel it is; `None` for the operator's channels.
    pub tenant_id: Option<Uuid>,
    pub channel: NotificationChannel,
    /// The destination with its secret parts masked.
    pub destination: String,
    pub enabled: bool,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
}

impl EventPayload for ChannelEvent {
    fn tenant_id(&self) -> Option<Uuid> {
        self.tenant_id
    }
    fn resource(&self) -> (&'static str, String) {
        ("notification_channel", self.channel_id.to_string())
    }
}

/// Payload of `notification.test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTest {
    pub channel_id: Uuid,
    pub tenant_id: Option<Uuid>,
    /// A human sentence saying this is a test.
    pub message: String,
}

impl EventPayload for ChannelTest {
    fn tenant_id(&self) -> Option<Uuid> {
        self.tenant_id
    }
    fn resource(&self) -> (&'static str, String) {
        ("notification_channel", self.channel_id.to_string())
    }
}

/// Payload of `notification.channel_disabled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDisabled {
    pub channel_id: Uuid,
    /// The tenant whose channel it is; `None` for the operator's channels.
    pub tenant_id: Option<Uuid>,
    pub channel: NotificationChannel,
    /// The destination with its secret parts masked.
    pub destination: String,
    /// What the receiver answered.
    pub reason: String,
}

impl EventPayload for ChannelDisabled {
    fn tenant_id(&self) -> Option<Uuid> {
        self.tenant_id
    }
    fn resource(&self) -> (&'static str, String) {
        ("notification_channel", self.channel_id.to_string())
    }
}

/// Payload of `billing.credit_granted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditGranted {
    pub tenant_id: Uuid,
    pub credit_id: Uuid,
    pub credit_type: CreditType,
    pub amount_microdollars: i64,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub description: Option<String>,
}

impl EventPayload for CreditGranted {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("credit", self.credit_id.to_string())
    }
}

/// Payload of `billing.budget_updated`, `billing.budget_warning` and
/// `billing.budget_exceeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetEvent {
    pub tenant_id: Uuid,
    /// The UTC month (its first day).
    pub month: NaiveDate,
    /// `None`: no budget (it was removed).
    pub budget_microdollars: Option<i64>,
    /// Cost of the month so far (before credits).
    pub spent_microdollars: i64,
    /// `spent` as a whole percentage of the budget.
    pub percent: i64,
    /// Whether reaching the budget stops requests.
    pub hard_stop: bool,
}

impl EventPayload for BudgetEvent {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("tenant", self.tenant_id.to_string())
    }
}

/// Payload of `billing.export_failed` (an operator event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFailed {
    /// The tenant whose usage it is (the event goes to the operator only).
    pub tenant: Uuid,
    /// The `billing_events` row (the export log entry).
    pub billing_event_id: Uuid,
    /// The UTC hour the usage is of.
    pub hour: DateTime<Utc>,
    pub amount_microdollars: i64,
    /// The meter event identifier.
    pub identifier: String,
    pub attempts: i32,
    pub error: String,
}

impl EventPayload for ExportFailed {
    fn resource(&self) -> (&'static str, String) {
        ("billing_event", self.billing_event_id.to_string())
    }
}

/// Payload of `payment.failed` and `payment.succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    pub tenant_id: Uuid,
    pub stripe_customer_id: String,
    pub invoice_id: Option<String>,
    /// In the currency's smallest unit, as Stripe reports it.
    pub amount_due: Option<i64>,
    pub currency: Option<String>,
    /// The Stripe event that told us.
    pub stripe_event_id: String,
    /// `payment.failed`: when the tenant is suspended if still unpaid.
    pub suspend_after: Option<DateTime<Utc>>,
}

impl EventPayload for PaymentEvent {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("tenant", self.tenant_id.to_string())
    }
}

/// Payload of `billing.subscription_deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionDeleted {
    pub tenant_id: Uuid,
    pub stripe_customer_id: String,
    pub subscription_id: Option<String>,
    pub stripe_event_id: String,
}

impl EventPayload for SubscriptionDeleted {
    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }
    fn resource(&self) -> (&'static str, String) {
        ("tenant", self.tenant_id.to_string())
    }
}

/// One example of every kind, with plausible values: the catalogue's
/// documentation and a receiver's test send are built from these.
pub fn example(kind: EventKind) -> Event {
    let id = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n);
    // 2026-01-05T09:00:00Z plus `secs`: examples are stable.
    let at = |secs: i64| DateTime::<Utc>::from_timestamp(1_767_603_600 + secs, 0).unwrap_or_default();
    let tenant = TenantEvent {
        tenant_id: id(1),
        name: "Acme".into(),
        email: "ops@acme.example".into(),
        status: TenantStatus::Active,
        billing_plan: BillingPlan::Serverless,
        reason: None,
    };
    let environment = EnvironmentEvent {
        tenant_id: id(1),
        environment_id: id(2),
        name: "prod".into(),
        status: EnvironmentStatus::Active,
    };
    let key = ApiKeyEvent {
        tenant_id: id(1),
        environment_id: id(2),
        key_id: id(3),
        key_prefix: "cl_k3j9x2ab".into(),
        name: "backend".into(),
        role: ApiKeyRole::Developer,
        status: ApiKeyStatus::Active,
    };
    let model = ModelEvent {
        name: "llama-3-8b".into(),
        model_type: ModelType::Chat,
        status: ModelStatus::Active,
        price_input_microdollars_per_million: 50_000,
        price_output_microdollars_per_million: 50_000,
    };
    let deployment = DeploymentEvent {
        deployment_id: id(4),
        name: "llama-prod".into(),
        model_name: "llama-3-8b".into(),
        status: DeploymentStatus::Active,
        min_replicas: 2,
        max_replicas: 6,
        strategy: DeploymentStrategy::Spread,
        provider: None,
        region: None,
        gpu_type: "auto".into(),
        gpu_count: None,
        use_spot: true,
        capacity_policy: crate::CapacityPolicy::Spot,
    };
    let node = |status: NodeStatus, detail: &str| NodeEvent {
        node_id: id(5),
        cluster_name: Some("cic-aws-us-east-l4-spot-5f2a".into()),
        deployment_id: Some(id(4)),
        provider: Provider::Aws,
        model: Some("llama-3-8b".into()),
        region: Some("us-east".into()),
        endpoint_url: Some("http://10.0.0.5:8000".into()),
        status,
        detail: Some(detail.into()),
    };
    let with = |status| TenantEvent {
        status,
        ..tenant.clone()
    };
    match kind {
        EventKind::TenantCreated => Event::TenantCreated(tenant),
        EventKind::TenantUpdated => Event::TenantUpdated(tenant),
        EventKind::TenantSuspended => Event::TenantSuspended(TenantEvent {
            reason: Some(SuspensionReason::NonPayment),
            ..with(TenantStatus::Suspended)
        }),
        EventKind::TenantActivated => Event::TenantActivated(tenant),
        EventKind::TenantDeleted => Event::TenantDeleted(with(TenantStatus::Deleted)),
        EventKind::EnvironmentCreated => Event::EnvironmentCreated(environment),
        EventKind::EnvironmentUpdated => Event::EnvironmentUpdated(environment),
        EventKind::EnvironmentSuspended => Event::EnvironmentSuspended(EnvironmentEvent {
            status: EnvironmentStatus::Suspended,
            ..environment
        }),
        EventKind::EnvironmentActivated => Event::EnvironmentActivated(environment),
        EventKind::EnvironmentDeleted => Event::EnvironmentDeleted(environment),
        EventKind::ApiKeyCreated => Event::ApiKeyCreated(key),
        EventKind::ApiKeyUpdated => Event::ApiKeyUpdated(key),
        EventKind::ApiKeySuspended => Event::ApiKeySuspended(ApiKeyEvent {
            status: ApiKeyStatus::Suspended,
            ..key
        }),
        EventKind::ApiKeyActivated => Event::ApiKeyActivated(key),
        EventKind::ApiKeyRevoked => Event::ApiKeyRevoked(ApiKeyEvent {
            status: ApiKeyStatus::Revoked,
            ..key
        }),
        EventKind::RegionUpdated => Event::RegionUpdated(RegionEvent {
            code: "eu-west".into(),
            status: RegionStatus::Active,
            cloud_providers: vec![Provider::Aws, Provider::Gcp],
            cost_multiplier_milli: 1100,
        }),
        EventKind::ModelUpdated => Event::ModelUpdated(model),
        EventKind::ModelDeprecated => Event::ModelDeprecated(ModelEvent {
            status: ModelStatus::Deprecated,
            ..model
        }),
        EventKind::GpuUpdated => Event::GpuUpdated(GpuEvent {
            gpu_type: "L4".into(),
            provider: Provider::Gcp,
            vram_gb: 24,
            on_demand_microdollars_per_hour: 800_000,
            spot_microdollars_per_hour: Some(240_000),
            available: true,
        }),
        EventKind::DeploymentCreated => Event::DeploymentCreated(deployment),
        EventKind::DeploymentUpdated => {
            let mut changes = Map::new();
            changes.insert("max_replicas".into(), Value::from(6));
            Event::DeploymentUpdated(DeploymentUpdated { deployment, changes })
        }
        EventKind::DeploymentPaused => Event::DeploymentPaused(DeploymentEvent {
            status: DeploymentStatus::Paused,
            ..deployment
        }),
        EventKind::DeploymentResumed => Event::DeploymentResumed(deployment),
        EventKind::DeploymentDeleted => Event::DeploymentDeleted(DeploymentEvent {
            status: DeploymentStatus::Deleted,
            ..deployment
        }),
        EventKind::DeploymentScaled => Event::DeploymentScaled(DeploymentScaled {
            deployment_id: id(4),
            deployment: "llama-prod".into(),
            action: ScaleAction::Launch,
            count: 1,
            live: 2,
            launching: 0,
            min: 2,
            max: 6,
        }),
        EventKind::NodeLaunched => Event::NodeLaunched(NodeLaunched {
            node_id: id(5),
            cluster_name: "cic-aws-us-east-l4-spot-5f2a".into(),
            deployment_id: Some(id(4)),
            provider: Provider::Aws,
            region: Some("us-east".into()),
            gpu_type: Some("L4".into()),
            gpu_count: 1,
            spot: true,
            model: "llama-3-8b".into(),
            job_id: id(6),
        }),
        EventKind::NodeRegistered => Event::NodeRegistered(node(NodeStatus::Initializing, "registered")),
        EventKind::NodeActive => Event::NodeActive(node(NodeStatus::Active, "engine health reported by the agent")),
        EventKind::NodeUnhealthy => Event::NodeUnhealthy(node(NodeStatus::Unhealthy, "missed heartbeats")),
        EventKind::NodeDead => Event::NodeDead(node(NodeStatus::Dead, "no heartbeat")),
        EventKind::NodeDraining => Event::NodeDraining(node(NodeStatus::Draining, "scaled down by the reconciler")),
        EventKind::NodePreempted => Event::NodePreempted(node(
            NodeStatus::Draining,
            "aws preemption notice: {\"action\": \"terminate\"}",
        )),
        EventKind::NodeTerminated => Event::NodeTerminated(node(NodeStatus::Terminated, "terminated (drained)")),
        EventKind::NodeLaunchFailed => Event::NodeLaunchFailed(NodeLaunchFailed {
            node_id: id(5),
            cluster_name: "cic-aws-us-east-l4-spot-5f2a".into(),
            deployment_id: Some(id(4)),
            provider: Provider::Aws,
            region: Some("us-east".into()),
            gpu_type: Some("L4".into()),
            spot: true,
            model: "llama-3-8b".into(),
            job_id: id(6),
            error: "sky launch exited with 1: InsufficientInstanceCapacity".into(),
        }),
        EventKind::DeploymentDegraded => Event::DeploymentDegraded(DeploymentDegraded {
            deployment_id: id(4),
            name: "llama-prod".into(),
            model_name: "llama-3-8b".into(),
            live: 1,
            min_replicas: 2,
            below_min_since: at(0),
        }),
        EventKind::QuotaWarning => Event::QuotaWarning(QuotaEvent {
            tenant_id: id(1),
            environment_id: id(2),
            environment: "prod".into(),
            day: at(0).date_naive(),
            used_tokens: 800_000,
            quota_tokens: 1_000_000,
            percent: 80,
        }),
        EventKind::QuotaExhausted => Event::QuotaExhausted(QuotaEvent {
            tenant_id: id(1),
            environment_id: id(2),
            environment: "prod".into(),
            day: at(0).date_naive(),
            used_tokens: 1_000_412,
            quota_tokens: 1_000_000,
            percent: 100,
        }),
        EventKind::KeyExpiring => Event::KeyExpiring(KeyExpiring {
            tenant_id: id(1),
            environment_id: id(2),
            key_id: id(3),
            key_prefix: "cl_k3j9x2ab".into(),
            name: "backend".into(),
            expires_at: at(3 * 86_400),
        }),
        EventKind::ChannelCreated | EventKind::ChannelUpdated | EventKind::ChannelDeleted => {
            let c = ChannelEvent {
                channel_id: id(7),
                tenant_id: Some(id(1)),
                channel: NotificationChannel::Slack,
                destination: "https://hooks.slack.com/…".into(),
                enabled: true,
                event_types: Some(vec!["node.*".into(), "quota.exhausted".into()]),
            };
            match kind {
                EventKind::ChannelCreated => Event::ChannelCreated(c),
                EventKind::ChannelUpdated => Event::ChannelUpdated(c),
                _ => Event::ChannelDeleted(c),
            }
        }
        EventKind::ChannelTest => Event::ChannelTest(ChannelTest {
            channel_id: id(7),
            tenant_id: Some(id(1)),
            message: "This is a test notification from CrossLogic.".into(),
        }),
        EventKind::ChannelDisabled => Event::ChannelDisabled(ChannelDisabled {
            channel_id: id(7),
            tenant_id: Some(id(1)),
            channel: NotificationChannel::Webhook,
            destination: "https://hooks.acme.example/…".into(),
            reason: "410 Gone".into(),
        }),
        EventKind::CreditGranted => Event::CreditGranted(CreditGranted {
            tenant_id: id(1),
            credit_id: id(8),
            credit_type: CreditType::Promotional,
            amount_microdollars: 25_000_000,
            expires_at: Some(at(90 * 86_400)),
            description: Some("launch promotion".into()),
        }),
        EventKind::BudgetUpdated | EventKind::BudgetWarning | EventKind::BudgetExceeded => {
            let (spent, percent) = match kind {
                EventKind::BudgetWarning => (81_250_000, 81),
                EventKind::BudgetExceeded => (100_000_013, 100),
                _ => (12_000_000, 12),
            };
            let b = BudgetEvent {
                tenant_id: id(1),
                month: at(0).date_naive().with_day(1).unwrap_or_default(),
                budget_microdollars: Some(100_000_000),
                spent_microdollars: spent,
                percent,
                hard_stop: true,
            };
            match kind {
                EventKind::BudgetWarning => Event::BudgetWarning(b),
                EventKind::BudgetExceeded => Event::BudgetExceeded(b),
                _ => Event::BudgetUpdated(b),
            }
        }
        EventKind::ExportFailed => Event::ExportFailed(ExportFailed {
            tenant: id(1),
            billing_event_id: id(9),
            hour: at(0),
            amount_microdollars: 1_234_567,
            identifier: "cl-01900000000070008000000000000001-1767603600-r0".into(),
            attempts: 0,
            error: "the hour is older than Stripe's 35-day window for meter events".into(),
        }),
        EventKind::PaymentFailed | EventKind::PaymentSucceeded => {
            let p = PaymentEvent {
                tenant_id: id(1),
                stripe_customer_id: "cus_Q1w2e3r4t5".into(),
                invoice_id: Some("in_1Pq2w3e4r5".into()),
                amount_due: Some(4_200),
                currency: Some("usd".into()),
                stripe_event_id: "evt_1Pq2w3e4r5t6".into(),
                suspend_after: (kind == EventKind::PaymentFailed).then(|| at(3 * 86_400)),
            };
            if kind == EventKind::PaymentFailed {
                Event::PaymentFailed(p)
            } else {
                Event::PaymentSucceeded(p)
            }
        }
        EventKind::SubscriptionDeleted => Event::SubscriptionDeleted(SubscriptionDeleted {
            tenant_id: id(1),
            stripe_customer_id: "cus_Q1w2e3r4t5".into(),
            subscription_id: Some("sub_1Pq2w3e4r5".into()),
            stripe_event_id: "evt_1Pq2w3e4r5t7".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_example_of_its_own_kind_that_round_trips() {
        for kind in EventKind::ALL {
            let event = example(*kind);
            assert_eq!(event.kind(), *kind);
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), *kind);
            let back = Event::from_stored(kind.as_str(), event.payload()).unwrap();
            assert_eq!(back, event, "{kind}");
        }
    }

    #[test]
    fn names_are_family_dot_action_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            let (family, action) = kind.as_str().split_once('.').unwrap();
            assert!(!family.is_empty() && !action.is_empty(), "{kind}");
            assert!(kind
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'));
            assert!(seen.insert(kind.as_str()), "{kind} twice");
        }
    }

    #[test]
    fn tenant_events_carry_their_tenant_and_platform_events_none() {
        for kind in EventKind::ALL {
            let event = example(*kind);
            // billing.export_failed is the operator's business, not the tenant's.
            let tenant_scoped = matches!(
                kind.family(),
                "tenant" | "environment" | "apikey" | "quota" | "key" | "notification" | "billing" | "payment"
            ) && *kind != EventKind::ExportFailed;
            assert_eq!(event.tenant_id().is_some(), tenant_scoped, "{kind}");
        }
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_refused() {
        let err = Event::from_stored("node.dead", serde_json::json!({ "tenant_id": "x" }));
        assert!(err.is_err());
        assert!(Event::from_stored("node.exploded", serde_json::json!({})).is_err());
    }

    /// The catalogue table of `docs/EVENTS.md`, as the code defines it.
    fn catalogue_table() -> String {
        let mut out = String::from("| event | severity | payload fields | emitted by |\n|---|---|---|---|\n");
        for kind in EventKind::ALL {
            let mut fields: Vec<String> = match example(*kind).payload() {
                Value::Object(m) => m.keys().map(|k| format!("`{k}`")).collect(),
                _ => Vec::new(),
            };
            fields.sort();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                kind.as_str(),
                kind.severity(),
                fields.join(", "),
                kind.emitter()
            ));
        }
        out
    }

    /// `docs/EVENTS.md` lists exactly these kinds, with their severity,
    /// payload fields and emitter, so the public catalogue cannot drift
    /// from the code. On a mismatch the message holds the table to paste.
    #[test]
    fn the_documented_catalogue_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/EVENTS.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let expected = catalogue_table();
        assert!(
            doc.contains(&expected),
            "docs/EVENTS.md does not contain the catalogue as the code defines it; expected:\n{expected}"
        );
    }
}
