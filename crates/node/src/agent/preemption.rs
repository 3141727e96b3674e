//! Spot preemption notices from the cloud's instance metadata service, polled:
//! - AWS: an IMDSv2 session token (`PUT /latest/api/token`), then
//!   `GET /latest/meta-data/spot/instance-action` — 404 while no interruption
//!   is scheduled, 200 `{"action": "terminate"|"stop"|"hibernate", "time"}`
//!   once it is;
//! - GCP: `GET /computeMetadata/v1/instance/preempted` with
//!   `Metadata-Flavor: Google` — `TRUE` once preempted;
//! - Azure: `GET /metadata/scheduledevents?api-version=2020-07-01` with
//!   `Metadata: true` — an event whose `EventType` is `Preempt`.
//!
//! The first notice is reported to the control plane once; the control plane
//! then drains the node and replaces it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use super::backoff::Backoff;
use super::client::{ControlClient, Credential};
use super::config::{Cloud, PreemptionConfig};

/// Time limit of one metadata request (the service is local to the host).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Lifetime asked for an IMDSv2 session token (the maximum, 6 hours).
const AWS_TOKEN_TTL_SECS: u64 = 21_600;
/// An IMDSv2 token is renewed this long before it expires.
const AWS_TOKEN_MARGIN: Duration = Duration::from_secs(600);
/// How many times a notice is offered to the control plane before giving up.
const REPORT_ATTEMPTS: u32 = 8;

/// A poll that could not tell whether a notice exists.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PollError {
    #[error("metadata service unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("metadata service answered {0}")]
    Status(StatusCode),
    #[error("metadata service answered malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Polls one cloud's metadata service.
#[derive(Debug)]
pub(crate) struct Watcher {
    http: reqwest::Client,
    cfg: PreemptionConfig,
    base: String,
    /// The IMDSv2 session token and when it was issued.
    aws_token: Option<(String, Instant)>,
}

impl Watcher {
    pub(crate) fn new(cfg: PreemptionConfig) -> Result<Watcher, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
        let base = cfg.metadata_url.trim_end_matches('/').to_owned();
        Ok(Watcher {
            http,
            cfg,
            base,
            aws_token: None,
        })
    }

    /// Polls until the cloud announces preemption; returns the notice as the
    /// metadata service gave it.
    pub(crate) async fn wait_for_notice(&mut self) -> String {
        let mut ticker = tokio::time::interval(self.cfg.poll_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match self.check().await {
                Ok(Some(notice)) => return notice,
                Ok(None) => {
                    if failing {
                        tracing::info!(cloud = %self.cfg.cloud, "metadata service answers again");
                    }
                    failing = false;
                }
                Err(e) => {
                    // Warn once per outage, not on every poll.
                    if failing {
                        tracing::debug!(cloud = %self.cfg.cloud, error = %e, "preemption poll failed");
                    } else {
                        tracing::warn!(cloud = %self.cfg.cloud, error = %e, "preemption poll failed");
                    }
                    failing = true;
                }
            }
        }
    }

    /// One poll: `Some(notice)` when preemption is announced.
    pub(crate) async fn check(&mut self) -> Result<Option<String>, PollError> {
        match self.cfg.cloud {
            Cloud::Aws => self.check_aws().await,
            Cloud::Gcp => self.check_gcp().await,
            Cloud::Azure => self.check_azure().await,
        }
    }

    async fn check_aws(&mut self) -> Result<Option<String>, PollError> {
        let token = self.aws_token().await?;
        let resp = self
            .http
            .get(format!("{}/latest/meta-data/spot/instance-action", self.base))
            .header("X-aws-ec2-metadata-token", token)
            .send()
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => {
                // The token expired or was revoked: take a new one next time.
                self.aws_token = None;
                Err(PollError::Status(StatusCode::UNAUTHORIZED))
            }
            status if status.is_success() => Ok(Some(resp.text().await?)),
            status => Err(PollError::Status(status)),
        }
    }

    /// The cached IMDSv2 token, renewed when close to expiry.
    async fn aws_token(&mut self) -> Result<String, PollError> {
        let lifetime = Duration::from_secs(AWS_TOKEN_TTL_SECS).saturating_sub(AWS_TOKEN_MARGIN);
        if let Some((token, issued)) = &self.aws_token {
            if issued.elapsed() < lifetime {
                return Ok(token.clone());
            }
        }
        let resp = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header("X-aws-ec2-metadata-token-ttl-seconds", AWS_TOKEN_TTL_SECS.to_string())
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(PollError::Status(resp.status()));
        }
        let token = resp.text().await?.trim().to_owned();
        self.aws_token = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    async fn check_gcp(&self) -> Result<Option<String>, PollError> {
        let resp = self
            .http
            .get(format!("{}/computeMetadata/v1/instance/preempted", self.base))
            .header("Metadata-Flavor", "Google")
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(PollError::Status(resp.status()));
        }
        let body = resp.text().await?;
        Ok(body.trim().eq_ignore_ascii_case("TRUE").then_some(body))
    }

    async fn check_azure(&self) -> Result<Option<String>, PollError> {
        let resp = self
            .http
            .get(format!("{}/metadata/scheduledevents?api-version=2020-07-01", self.base))
            .header("Metadata", "true")
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(PollError::Status(resp.status()));
        }
        let body = resp.text().await?;
        Ok(azure_preempts(&serde_json::from_str(&body)?).then_some(body))
    }
}

/// Whether an Azure scheduled-events document announces a preemption.
fn azure_preempts(doc: &Value) -> bool {
    doc.get("Events").and_then(Value::as_array).is_some_and(|events| {
        events
            .iter()
            .any(|e| e.get("EventType").and_then(Value::as_str) == Some("Preempt"))
    })
}

/// Waits for a notice, then reports it to the control plane (retrying
/// transient failures a few times). Returns once reported or given up.
pub(crate) async fn watch(mut watcher: Watcher, client: &ControlClient, node_id: Uuid, token: &Credential) {
    let provider = watcher.cfg.cloud.as_str();
    let notice = watcher.wait_for_notice().await;
    tracing::warn!(cloud = provider, %node_id, "spot preemption notice received; reporting it so the node drains");
    let mut backoff = Backoff::default();
    for attempt in 1..=REPORT_ATTEMPTS {
        match client.preemption(node_id, token, provider, &notice).await {
            Ok(()) => {
                tracing::info!(%node_id, "preemption notice reported");
                return;
            }
            Err(e) if e.is_transient() && attempt < REPORT_ATTEMPTS => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, attempt, retry_in = ?delay, "reporting the preemption notice failed");
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                tracing::error!(error = %e, attempt, "could not report the preemption notice");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_preempt_events_count_on_azure() {
        assert!(!azure_preempts(&json!({"DocumentIncarnation": 1, "Events": []})));
        assert!(!azure_preempts(
            &json!({"Events": [{"EventType": "Freeze", "EventId": "a"}]})
        ));
        assert!(azure_preempts(&json!({
            "DocumentIncarnation": 2,
            "Events": [
                {"EventType": "Freeze", "EventId": "a"},
                {"EventId": "b", "EventType": "Preempt", "ResourceType": "VirtualMachine",
                 "Resources": ["vm1"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT"}
            ]
        })));
        assert!(!azure_preempts(&json!({"unexpected": true})));
    }
}
