//! Verification of `Stripe-Signature` (`t=<unix>,v1=<hex>[,v1=<hex>…]`):
//! HMAC-SHA256 of `"{t}.{raw body}"` keyed with the whole `whsec_…` string,
//! any `v1` matching any configured secret (Stripe signs with old and new
//! secrets while one is rolled; we may hold several while rotating ours),
//! within a tolerance of the current time, compared in constant time.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Stripe's default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused (answered 400; the text is safe to show).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature has no t=<timestamp> and v1=<signature>")]
    Malformed,
    #[error("the signature's timestamp is more than {TOLERANCE_SECS} s from now (replayed or a clock problem)")]
    Stale,
    #[error("no v1 signature matches the endpoint's signing secret")]
    Mismatch,
}

/// Verifies `header` over `payload` at unix time `now`.
pub fn verify(payload: &[u8], header: Option<&str>, secrets: &[SecretString], now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" if timestamp.is_none() => timestamp = v.parse().ok(),
            "v1" => {
                if let Ok(sig) = hex::decode(v) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    if now.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        let expected = mac(secret.expose_secret().as_bytes(), t, payload);
        if signatures
            .iter()
            .any(|s| bool::from(s.as_slice().ct_eq(expected.as_slice())))
        {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

fn mac(secret: &[u8], t: i64, payload: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret) else {
        return Vec::new();
    };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sign(payload: &[u8], secret: &str, t: i64) -> String {
        format!("t={t},v1={}", hex::encode(mac(secret.as_bytes(), t, payload)))
    }

    fn secrets(s: &[&str]) -> Vec<SecretString> {
        s.iter().map(|v| SecretString::from(v.to_string())).collect()
    }

    #[test]
    fn a_signature_of_the_body_with_the_secret_verifies() {
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let now = 1_700_000_000;
        let h = sign(body, "whsec_abc", now - 10);
        assert_eq!(verify(body, Some(&h), &secrets(&["whsec_abc"]), now), Ok(()));
        // Another secret, a changed body, an old timestamp: refused.
        assert_eq!(
            verify(body, Some(&h), &secrets(&["whsec_xyz"]), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"{}", Some(&h), &secrets(&["whsec_abc"]), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(body, Some(&h), &secrets(&["whsec_abc"]), now + 400),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(body, None, &secrets(&["whsec_abc"]), now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(body, Some("v1=00"), &secrets(&["whsec_abc"]), now),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn any_v1_and_any_configured_secret_may_match_during_rotation() {
        let body = b"payload";
        let now = 1_700_000_000;
        let old = sign(body, "whsec_old", now);
        let new = sign(body, "whsec_new", now);
        let both = format!("{old},{}", new.split_once(',').unwrap().1);
        assert_eq!(verify(body, Some(&both), &secrets(&["whsec_new"]), now), Ok(()));
        assert_eq!(
            verify(body, Some(&old), &secrets(&["whsec_new", "whsec_old"]), now),
            Ok(())
        );
    }
}
