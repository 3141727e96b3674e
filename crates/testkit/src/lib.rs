//! Test support: every test gets its own database on a real PostgreSQL
//! server, so tests never share state and can run in parallel.
//!
//! The server comes from `CROSSLOGIC_TEST_DATABASE_URL` (default
//! `postgresql://postgres@127.0.0.1:5432/postgres`, which `scripts/test.sh`
//! makes sure is running). The admin role must be allowed to create databases.

#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod fixtures;
pub mod gateway;
pub mod receiver;
pub mod stripe;

use std::collections::HashMap;

use crosslogic_config::{Config, ExternalDatabase};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

/// Prefix of every database a test creates; `scripts/test.sh` drops leftovers.
pub const DB_PREFIX: &str = "clt_";

/// URL of the server's maintenance database that tests create databases from.
pub fn admin_url() -> String {
    std::env::var("CROSSLOGIC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A throwaway database, dropped by [`TestDb::drop_db`] (or by the next
/// `scripts/test.sh` run if the test panicked first).
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// `postgresql://…/name` of the new database.
    pub url: String,
    /// A small pool on it.
    pub pool: PgPool,
}

impl TestDb {
    /// Creates an empty database.
    pub async fn new() -> TestDb {
        let name = format!("{DB_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new().max_connections(1).connect(&admin_url()).await.unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL at {} ({e}); run scripts/test.sh or set CROSSLOGIC_TEST_DATABASE_URL", admin_url())
        });
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        admin.close().await;
        let mut url = url::Url::parse(&admin_url()).expect("admin url");
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connect test database");
        TestDb { name, url, pool }
    }

    /// The database as a configured external target.
    pub fn target(&self) -> ExternalDatabase {
        match Config::from_vars(&self.env()).expect("config").database.target {
            crosslogic_config::DatabaseTarget::External(db) => db,
            crosslogic_config::DatabaseTarget::Embedded => unreachable!(),
        }
    }

    /// Environment pointing the binary at this database.
    pub fn env(&self) -> HashMap<String, String> {
        HashMap::from([("DATABASE_URL".to_owned(), self.url.clone())])
    }

    /// Drops the database (terminating its connections).
    pub async fn drop_db(self) {
        self.pool.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url())
            .await
            .expect("admin");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop test database");
        admin.close().await;
    }
}
