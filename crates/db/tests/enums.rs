//! Every status value written by code is accepted by its CHECK constraint,
//! and the constraint rejects anything else (so the test can fail).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosslogic_core::*;
use crosslogic_db::migrate;
use crosslogic_testkit::TestDb;
use sqlx::PgPool;

/// Inserts `value` into `column` of a copy of `table` that keeps its CHECK
/// constraints but none of its NOT NULLs or foreign keys.
async fn accepted(pool: &PgPool, table: &str, column: &str, value: &str) -> bool {
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TEMP TABLE probe (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) ON COMMIT DROP"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'probe'::regclass AND attnum > 0 AND attnotnull",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    for c in cols {
        sqlx::raw_sql(&format!("ALTER TABLE probe ALTER COLUMN {c} DROP NOT NULL"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let ok = sqlx::query(&format!("INSERT INTO probe ({column}) VALUES ($1)"))
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
            assert_eq!(
                code.as_deref(),
                Some("23514"),
                "unexpected error for {table}.{column}={value}: {e}"
            );
        })
        .is_ok();
    tx.rollback().await.unwrap();
    ok
}

async fn check<E: Copy + std::fmt::Display>(pool: &PgPool, table: &str, column: &str, all: &[E]) {
    for v in all {
        assert!(
            accepted(pool, table, column, &v.to_string()).await,
            "{table}.{column} rejects {v}"
        );
    }
    assert!(
        !accepted(pool, table, column, "not-a-valid-value").await,
        "{table}.{column} has no CHECK constraint"
    );
}

#[tokio::test]
async fn every_core_enum_value_is_accepted_by_its_check_constraint() {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    let p = &db.pool;
    check(p, "tenants", "status", TenantStatus::ALL).await;
    check(p, "tenants", "billing_plan", BillingPlan::ALL).await;
    check(p, "tenants", "suspension_reason", SuspensionReason::ALL).await;
    check(p, "environments", "status", EnvironmentStatus::ALL).await;
    check(p, "api_keys", "role", ApiKeyRole::ALL).await;
    check(p, "api_keys", "status", ApiKeyStatus::ALL).await;
    check(p, "regions", "status", RegionStatus::ALL).await;
    check(p, "models", "type", ModelType::ALL).await;
    check(p, "models", "status", ModelStatus::ALL).await;
    check(p, "nodes", "provider", Provider::ALL).await;
    check(p, "gpu_prices", "provider", Provider::ALL).await;
    check(p, "deployments", "provider", Provider::ALL).await;
    check(p, "nodes", "status", NodeStatus::ALL).await;
    check(p, "usage_records", "status", UsageStatus::ALL).await;
    check(p, "billing_events", "event_type", BillingEventType::ALL).await;
    check(p, "billing_events", "status", BillingEventStatus::ALL).await;
    check(p, "credits", "credit_type", CreditType::ALL).await;
    check(p, "reservations", "status", ReservationStatus::ALL).await;
    check(p, "health_checks", "status", HealthCheckStatus::ALL).await;
    check(p, "events", "severity", EventSeverity::ALL).await;
    check(p, "deployments", "strategy", DeploymentStrategy::ALL).await;
    check(p, "deployments", "status", DeploymentStatus::ALL).await;
    check(p, "deployments", "capacity_policy", CapacityPolicy::ALL).await;
    check(p, "deployment_nodes", "status", DeploymentNodeStatus::ALL).await;
    check(p, "provision_jobs", "kind", ProvisionJobKind::ALL).await;
    check(p, "provision_jobs", "status", ProvisionJobStatus::ALL).await;
    check(p, "notification_config", "channel", NotificationChannel::ALL).await;
    check(p, "notification_deliveries", "channel", NotificationChannel::ALL).await;
    check(p, "notification_deliveries", "status", DeliveryStatus::ALL).await;
    check(p, "notification_attempts", "outcome", AttemptOutcome::ALL).await;
    check(p, "events", "event_type", EventKind::ALL).await;
    db.drop_db().await;
}
