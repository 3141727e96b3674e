//! Keeps the key cache true: `NOTIFY crosslogic_auth` drops changed keys.

use std::time::Duration;

use crosslogic_db::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{KeyCache, AUTH_CHANNEL};

/// Listens for auth changes until `shutdown`; reconnects with backoff.
pub async fn run_invalidator(cache: KeyCache, pool: PgPool, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "auth listener cannot connect; retrying");
                tokio::select! { () = shutdown.cancelled() => return, () = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(AUTH_CHANNEL).await {
            tracing::warn!(error = %e, "auth listener cannot LISTEN; retrying");
            tokio::select! { () = shutdown.cancelled() => return, () = tokio::time::sleep(backoff) => {} }
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        // Anything cached before LISTEN took effect may be stale.
        cache.clear();
        backoff = Duration::from_millis(200);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                msg = listener.try_recv() => match msg {
                    Ok(Some(n)) => cache.invalidate(n.payload()),
                    // Keep serving cached keys while the database is away (no
                    // revocation can commit meanwhile); the cache is cleared
                    // as soon as LISTEN is re-established.
                    Ok(None) => {
                        tracing::warn!("auth listener connection lost; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "auth listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}
