//! Notification delivery decisions, as pure functions: which events a
//! channel's filter lets through, when to retry, and what an answer means.

use std::time::Duration;

use crate::events::EventKind;
use crate::{EventSeverity, NotificationChannel};

/// The Standard Webhooks retry schedule: the delay before each attempt
/// (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
pub const STANDARD_SCHEDULE: &[u64] = &[0, 5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400];

/// Delays before each attempt of a delivery; its length is the number of
/// attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(STANDARD_SCHEDULE.iter().map(|s| Duration::from_secs(*s)).collect())
    }
}

impl RetrySchedule {
    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// The delay before attempt `n` (0-based) after the previous one
    /// failed, with `jitter` in `[0, 1)` spreading it by ±20 %; `None` when
    /// the schedule is exhausted.
    pub fn delay_before(&self, n: u32, jitter: f64) -> Option<Duration> {
        let base = *self.0.get(usize::try_from(n).ok()?)?;
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        Some(base.mul_f64(factor))
    }
}

/// What one attempt's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Sent,
    /// Try again, not before `not_before` when the receiver said so.
    Retry { not_before: Option<Duration> },
    /// The destination is gone: stop, and disable the channel.
    Gone(String),
}

/// Slack answers these (404/410 bodies) when a webhook can never work again.
const SLACK_GONE: &[&str] = &["channel_not_found", "no_service", "channel_is_archived"];

/// Classifies an HTTP answer (`status`, `body`, the `Retry-After` it gave)
/// from a `channel`'s receiver. `status` is `None` when nothing came back
/// (connect failure, timeout).
pub fn classify(
    channel: NotificationChannel,
    status: Option<u16>,
    body: &str,
    retry_after: Option<Duration>,
) -> Verdict {
    let Some(status) = status else {
        return Verdict::Retry { not_before: None };
    };
    if (200..300).contains(&status) {
        return Verdict::Sent;
    }
    let gone = match channel {
        _ if status == 410 => true,
        NotificationChannel::Discord => status == 404,
        NotificationChannel::Slack => matches!(status, 404 | 410) || SLACK_GONE.iter().any(|c| body.contains(c)),
        _ => false,
    };
    if gone {
        let excerpt: String = body.chars().take(200).collect();
        return Verdict::Gone(format!("{status} {}", excerpt.trim()).trim().to_owned());
    }
    Verdict::Retry {
        not_before: retry_after,
    }
}

/// Whether `kind` passes a channel's event-type filter: `None` lets every
/// event through; entries are exact names (`node.dead`), family prefixes
/// (`node.*`) or `*`.
pub fn passes(filter: Option<&[String]>, kind: EventKind) -> bool {
    let Some(entries) = filter else { return true };
    entries
        .iter()
        .any(|e| e == "*" || e == kind.as_str() || e.strip_suffix(".*").is_some_and(|family| family == kind.family()))
}

/// Checks one filter entry against the catalogue; the error says what is
/// accepted.
pub fn check_filter_entry(entry: &str) -> Result<(), String> {
    if entry == "*" || entry.parse::<EventKind>().is_ok() {
        return Ok(());
    }
    if let Some(family) = entry.strip_suffix(".*") {
        if EventKind::ALL.iter().any(|k| k.family() == family) {
            return Ok(());
        }
        return Err(format!(
            "{entry:?}: no event family {family:?}; families are {}",
            families().join(", ")
        ));
    }
    Err(format!(
        "{entry:?} is not an event type; use a name from the event catalogue (such as node.dead), \
         a family such as node.*, or *"
    ))
}

/// The event families of the catalogue, in order.
pub fn families() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in EventKind::ALL {
        if !out.contains(&k.family()) {
            out.push(k.family());
        }
    }
    out
}

/// Severity as a rank, for `NOTIFY_MIN_SEVERITY`.
pub fn rank(s: EventSeverity) -> u8 {
    match s {
        EventSeverity::Info => 0,
        EventSeverity::Warning => 1,
        EventSeverity::Critical => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn answers_are_classified_as_the_providers_document_them() {
        use NotificationChannel::*;
        assert_eq!(classify(Webhook, Some(204), "", None), Verdict::Sent);
        assert!(matches!(classify(Webhook, Some(410), "", None), Verdict::Gone(_)));
        assert!(matches!(classify(Discord, Some(404), "{}", None), Verdict::Gone(_)));
        assert_eq!(
            classify(Webhook, Some(404), "", None),
            Verdict::Retry { not_before: None },
            "a generic 404 may be a deploy in progress"
        );
        assert!(matches!(
            classify(Slack, Some(400), "channel_is_archived", None),
            Verdict::Gone(_)
        ));
        assert_eq!(
            classify(Slack, Some(429), "", Some(Duration::from_secs(3))),
            Verdict::Retry {
                not_before: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            classify(Webhook, Some(301), "", None),
            Verdict::Retry { not_before: None },
            "3xx is a failure, not followed"
        );
        assert_eq!(classify(Email, None, "", None), Verdict::Retry { not_before: None });
    }

    #[test]
    fn filters_match_names_families_and_everything() {
        let f = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(passes(None, EventKind::NodeDead));
        assert!(passes(Some(&f(&["node.*"])), EventKind::NodeDead));
        assert!(!passes(Some(&f(&["node.*"])), EventKind::TenantCreated));
        assert!(passes(Some(&f(&["apikey.revoked"])), EventKind::ApiKeyRevoked));
        assert!(!passes(Some(&f(&["apikey.revoked"])), EventKind::ApiKeyCreated));
        assert!(passes(Some(&f(&["*"])), EventKind::QuotaWarning));
        assert!(
            !passes(Some(&[]), EventKind::NodeDead),
            "an empty filter lets nothing through"
        );
        assert!(check_filter_entry("node.*").is_ok());
        assert!(check_filter_entry("quota.exhausted").is_ok());
        assert!(check_filter_entry("nodes.*").unwrap_err().contains("families are"));
        assert!(check_filter_entry("node.exploded").is_err());
    }

    proptest! {
        #[test]
        fn jitter_stays_within_a_fifth(n in 0u32..12, jitter in 0.0f64..1.0) {
            let s = RetrySchedule::default();
            match s.delay_before(n, jitter) {
                None => prop_assert!(n >= s.attempts()),
                Some(d) => {
                    let base = Duration::from_secs(STANDARD_SCHEDULE[n as usize]);
                    prop_assert!(d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2));
                }
            }
        }
    }
}
