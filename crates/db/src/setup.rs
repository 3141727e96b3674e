//! Creating the platform's database correctly on any supported PostgreSQL
//! (`crosslogic db create`): the seed's step 1 (`CREATE DATABASE …; GRANT
//! ALL PRIVILEGES ON DATABASE … TO crosslogic`) is not enough since
//! PostgreSQL 15, where a database-level grant no longer lets a user create
//! tables in schema `public`. Making the user the database's *owner* is:
//! `public` belongs to `pg_database_owner` there (and is writable by all
//! on 14).

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

/// One connection to `url` (a superuser's, to the maintenance database).
pub async fn connect_admin(url: &str) -> Result<PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
}

/// What [`create_owned_database`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub role_created: bool,
    pub database_created: bool,
    /// The database existed and now belongs to the owner.
    pub owner_changed: bool,
}

/// A statement built by the server (`format` with `%I`/`%L`), so names and
/// the password are quoted by PostgreSQL, not by us.
async fn statement(admin: &PgPool, template: &str, args: &[&str]) -> Result<String, sqlx::Error> {
    let mut q = sqlx::query_scalar::<_, String>(template);
    for a in args {
        q = q.bind(*a);
    }
    q.fetch_one(admin).await
}

/// Over a superuser connection `admin`: creates login role `owner` (with
/// `password`, when given) unless it exists, and database `name` owned by
/// it — or hands an existing database to it.
pub async fn create_owned_database(
    admin: &PgPool,
    name: &str,
    owner: &str,
    password: Option<&SecretString>,
) -> Result<Setup, sqlx::Error> {
    let role_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(owner)
        .fetch_one(admin)
        .await?;
    if !role_exists {
        let stmt = match password {
            Some(p) => {
                statement(
                    admin,
                    "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                    &[owner, p.expose_secret()],
                )
                .await?
            }
            None => statement(admin, "SELECT format('CREATE ROLE %I LOGIN', $1::text)", &[owner]).await?,
        };
        sqlx::raw_sql(&stmt).execute(admin).await?;
    }
    let db_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(admin)
        .await?;
    let template = if db_exists {
        "SELECT format('ALTER DATABASE %I OWNER TO %I', $1::text, $2::text)"
    } else {
        "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)"
    };
    let stmt = statement(admin, template, &[name, owner]).await?;
    sqlx::raw_sql(&stmt).execute(admin).await?;
    Ok(Setup {
        role_created: !role_exists,
        database_created: !db_exists,
        owner_changed: db_exists,
    })
}
