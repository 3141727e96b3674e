//! `DB_SSL_MODE` through rustls against the real server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosslogic_config::SslMode;
use crosslogic_db::pool;
use crosslogic_testkit::TestDb;

async fn uses_tls(db: &TestDb, mode: SslMode) -> Result<bool, sqlx::Error> {
    let mut target = db.target();
    target.ssl_mode = mode;
    let p = pool::connect(&target, &Default::default()).await?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&p)
        .await?;
    p.close().await;
    Ok(ssl)
}

#[tokio::test]
async fn ssl_modes_behave_as_libpq_documents() {
    let db = TestDb::new().await;
    let server_ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&db.pool).await.unwrap();
    assert!(
        !uses_tls(&db, SslMode::Disable).await.unwrap(),
        "disable must not use TLS"
    );
    if server_ssl == "on" {
        assert!(uses_tls(&db, SslMode::Require).await.unwrap(), "require must use TLS");
        assert!(
            uses_tls(&db, SslMode::Prefer).await.unwrap(),
            "prefer must use TLS when offered"
        );
        // The local server's certificate is self-signed: verify-full must refuse it.
        let err = uses_tls(&db, SslMode::VerifyFull).await.unwrap_err();
        assert!(format!("{err:?}").contains("Certificate"), "{err:?}");
    } else {
        assert!(
            !uses_tls(&db, SslMode::Prefer).await.unwrap(),
            "prefer falls back to plain text"
        );
        assert!(
            uses_tls(&db, SslMode::Require).await.is_err(),
            "require must fail without server TLS"
        );
    }
    db.drop_db().await;
}
