//! Waking the workers: `LISTEN` on a channel the database `NOTIFY`s, with a
//! polling fallback so a missed notification (or a lost connection) only
//! delays work by the poll interval.

use std::time::Duration;

use crosslogic_db::PgPool;
use sqlx::postgres::PgListener;

/// A reconnecting listener on one channel.
pub(crate) struct Listener {
    pool: PgPool,
    channel: &'static str,
    inner: Option<PgListener>,
}

impl Listener {
    pub(crate) fn new(pool: &PgPool, channel: &'static str) -> Listener {
        Listener {
            pool: pool.clone(),
            channel,
            inner: None,
        }
    }

    /// Returns at the next notification, or after `max` at the latest.
    pub(crate) async fn wait(&mut self, max: Duration) {
        if self.inner.is_none() {
            self.inner = connect(&self.pool, self.channel).await;
        }
        let Some(l) = self.inner.as_mut() else {
            tokio::time::sleep(max).await;
            return;
        };
        if let Ok(Err(e)) = tokio::time::timeout(max, l.recv()).await {
            tracing::warn!(error = %e, channel = self.channel, "LISTEN connection lost; polling until it is back");
            self.inner = None;
        }
    }
}

async fn connect(pool: &PgPool, channel: &str) -> Option<PgListener> {
    let mut l = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, channel, "cannot LISTEN; polling instead");
            return None;
        }
    };
    match l.listen(channel).await {
        Ok(()) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, channel, "cannot LISTEN; polling instead");
            None
        }
    }
}
