//! The JSON bodies of the control plane's node-agent API (`/agent/v1`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The body of `POST /agent/v1/register`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Registration {
    /// A node the control plane launched: it already has a row and a
    /// per-node credential.
    Launched {
        node_id: Uuid,
        endpoint_url: String,
        internal_ip: Option<String>,
        external_id: Option<String>,
    },
    /// A hand-added node registering with the operator's registration token.
    OnPrem {
        endpoint_url: String,
        internal_ip: Option<String>,
        external_id: Option<String>,
        model: String,
        region: Option<String>,
        gpu_type: Option<String>,
        gpu_count: Option<u32>,
    },
}

/// The answer to a registration.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Registered {
    pub(crate) node_id: Uuid,
    /// Only for registration-token registrations: the per-node credential to
    /// use from now on.
    #[serde(default)]
    pub(crate) node_token: Option<String>,
    #[serde(default)]
    pub(crate) heartbeat_interval_secs: Option<u64>,
}

/// The body of a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Heartbeat {
    pub(crate) running: u32,
    pub(crate) waiting: u32,
    pub(crate) tokens_per_second: f64,
    pub(crate) kv_cache_usage: f64,
    pub(crate) engine_healthy: bool,
}

/// The node's status as the control plane sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NodeStatus {
    Initializing,
    Active,
    Draining,
    Unhealthy,
    Dead,
    Terminated,
    /// A status this agent does not know yet.
    #[serde(other)]
    Other,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct HeartbeatReply {
    pub(crate) status: NodeStatus,
    #[serde(default)]
    pub(crate) drain: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn registrations_serialize_to_the_two_api_shapes() {
        let id = Uuid::nil();
        let launched = Registration::Launched {
            node_id: id,
            endpoint_url: "http://10.0.0.5:8000".into(),
            internal_ip: Some("10.0.0.5".into()),
            external_id: None,
        };
        assert_eq!(
            serde_json::to_value(&launched).unwrap(),
            json!({"node_id": id, "endpoint_url": "http://10.0.0.5:8000", "internal_ip": "10.0.0.5", "external_id": null})
        );
        let on_prem = Registration::OnPrem {
            endpoint_url: "http://10.0.0.6:8000".into(),
            internal_ip: None,
            external_id: None,
            model: "llama".into(),
            region: Some("onprem-1".into()),
            gpu_type: Some("A10G".into()),
            gpu_count: Some(2),
        };
        assert_eq!(
            serde_json::to_value(&on_prem).unwrap(),
            json!({"endpoint_url": "http://10.0.0.6:8000", "internal_ip": null, "external_id": null,
                   "model": "llama", "region": "onprem-1", "gpu_type": "A10G", "gpu_count": 2})
        );
    }

    #[test]
    fn heartbeat_replies_tolerate_unknown_statuses() {
        let reply: HeartbeatReply = serde_json::from_str(r#"{"status":"draining","drain":true}"#).unwrap();
        assert_eq!(reply.status, NodeStatus::Draining);
        assert!(reply.drain);
        let reply: HeartbeatReply = serde_json::from_str(r#"{"status":"quarantined"}"#).unwrap();
        assert_eq!(reply.status, NodeStatus::Other);
        assert!(!reply.drain);
    }
}
