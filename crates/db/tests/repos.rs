//! Repository functions against a real database: round trips, typed
//! constraint errors, idempotent writes and outbox claiming.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use crosslogic_core::*;
use crosslogic_db::repo::{self, *};
use crosslogic_db::{migrate, DbError};
use crosslogic_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    migrate::migrate(&db.pool).await.unwrap();
    db
}

fn new_tenant(email: &str) -> tenants::NewTenant {
    tenants::NewTenant {
        name: "Acme".into(),
        email: email.into(),
        billing_plan: BillingPlan::Serverless,
        stripe_customer_id: None,
        region_preferences: vec!["in-mumbai".into()],
        metadata: json!({}),
    }
}

/// A tenant's "prod" environment with the defaults.
async fn prod_env(p: &sqlx::PgPool, tenant: Uuid) -> environments::Environment {
    let env = environments::NewEnvironment {
        tenant_id: tenant,
        name: "prod".into(),
        ..Default::default()
    };
    environments::create(p, &env).await.unwrap()
}

/// A developer key with the environment's limits.
async fn developer_key(p: &sqlx::PgPool, env: &environments::Environment, hash: &str) -> api_keys::ApiKey {
    let key = api_keys::NewApiKey {
        key_hash: hash.into(),
        key_prefix: format!("cl_{hash}"),
        tenant_id: env.tenant_id,
        environment_id: env.id,
        user_id: None,
        name: String::new(),
        role: ApiKeyRole::Developer,
        rate_limit_tokens_per_min: None,
        rate_limit_requests_per_min: None,
        concurrency_limit: None,
        expires_at: None,
        metadata: json!({}),
    };
    api_keys::create(p, &key).await.unwrap()
}

#[tokio::test]
async fn tenants_environments_and_keys_round_trip_with_typed_errors() {
    let db = migrated().await;
    let p = &db.pool;
    let t = tenants::create(p, &new_tenant("ops@acme.test")).await.unwrap();
    assert_eq!(t.status, TenantStatus::Active);
    let dup = tenants::create(p, &new_tenant("ops@acme.test")).await.unwrap_err();
    assert!(
        matches!(&dup, DbError::Conflict { constraint } if constraint == "tenants_email_key"),
        "{dup:?}"
    );

    let env = environments::create(
        p,
        &environments::NewEnvironment {
            tenant_id: t.id,
            name: "prod".into(),
            region: Some("in-mumbai".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            env.quota_tokens_per_day,
            env.quota_tokens_per_minute,
            env.concurrency_limit
        ),
        (1_000_000, 10_000, 10)
    );
    let bad_region = environments::create(
        p,
        &environments::NewEnvironment {
            tenant_id: t.id,
            name: "dev".into(),
            region: Some("mars-1".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(bad_region, DbError::ForeignKey { .. }), "{bad_region:?}");
    let dup_env = environments::create(
        p,
        &environments::NewEnvironment {
            tenant_id: t.id,
            name: "prod".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(dup_env, DbError::Conflict { .. }));

    let new_key = api_keys::NewApiKey {
        key_hash: "h1".into(),
        key_prefix: "cl_abc123".into(),
        tenant_id: t.id,
        environment_id: env.id,
        user_id: None,
        name: "ci".into(),
        role: ApiKeyRole::Developer,
        rate_limit_tokens_per_min: None,
        rate_limit_requests_per_min: None,
        concurrency_limit: None,
        expires_at: Some(Utc::now() + Duration::days(30)),
        metadata: json!({}),
    };
    let key = api_keys::create(p, &new_key).await.unwrap();
    assert_eq!((key.rate_limit_requests_per_min, key.concurrency_limit), (60, 5));
    // An environment of another tenant cannot take the key.
    let other = tenants::create(p, &new_tenant("other@x.test")).await.unwrap();
    let wrong = api_keys::create(
        p,
        &api_keys::NewApiKey {
            key_hash: "h2".into(),
            tenant_id: other.id,
            ..new_key.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(wrong, DbError::NotFound { entity: "environment" }));

    let auth = api_keys::auth_by_hash(p, "h1").await.unwrap();
    assert_eq!(
        (auth.key_id, auth.tenant_id, auth.environment_id),
        (key.id, t.id, env.id)
    );
    assert_eq!(auth.environment_region.as_deref(), Some("in-mumbai"));
    assert!(matches!(
        api_keys::auth_by_hash(p, "nope").await,
        Err(DbError::NotFound { .. })
    ));

    let revoked = api_keys::set_status(p, key.id, ApiKeyStatus::Revoked).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(matches!(
        api_keys::set_status(p, key.id, ApiKeyStatus::Active).await,
        Err(DbError::NotFound { .. })
    ));

    let now = Utc::now();
    assert_eq!(api_keys::touch_last_used(p, &[key.id], &[now]).await.unwrap(), 1);
    assert_eq!(
        api_keys::touch_last_used(p, &[key.id], &[now - Duration::hours(1)])
            .await
            .unwrap(),
        0,
        "moved backwards"
    );

    let patched = tenants::update(
        p,
        t.id,
        &tenants::TenantPatch {
            concurrency_limit: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((patched.concurrency_limit, patched.name.as_str()), (Some(3), "Acme"));
    let deleted = tenants::set_status(p, t.id, TenantStatus::Deleted, None).await.unwrap();
    assert!(deleted.deleted_at.is_some());
    let listed = tenants::list(p, None, None, None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![other.id],
        "deleted tenants are hidden"
    );
    assert!(matches!(
        tenants::get(p, Uuid::new_v4()).await,
        Err(DbError::NotFound { entity: "tenant" })
    ));
    db.drop_db().await;
}

#[tokio::test]
async fn tenant_list_pages_with_a_keyset_cursor() {
    let db = migrated().await;
    for i in 0..5 {
        tenants::create(&db.pool, &new_tenant(&format!("t{i}@x.test")))
            .await
            .unwrap();
    }
    let first = tenants::list(&db.pool, None, None, None, 2).await.unwrap();
    let second = tenants::list(&db.pool, None, None, Some(first[1].id), 2).await.unwrap();
    let third = tenants::list(&db.pool, None, None, Some(second[1].id), 2)
        .await
        .unwrap();
    let mut seen: Vec<Uuid> = first.iter().chain(&second).chain(&third).map(|t| t.id).collect();
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "pages overlap");
    db.drop_db().await;
}

/// A batch goes in by COPY; what is read back is exactly what was
/// recorded, whatever characters the text fields hold, and a batch that
/// COPY cannot take (a known request id, a vanished reference) still goes in
/// through the careful path, new rows only.
#[tokio::test]
async fn usage_rows_read_back_exactly_and_refused_batches_take_the_careful_path() {
    let db = migrated().await;
    let p = &db.pool;
    let t = tenants::create(p, &new_tenant("copy@x.test")).await.unwrap();
    let model = catalog::get_model(p, "llama-3-8b").await.unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T23:59:59.123456Z")
        .unwrap()
        .with_timezone(&Utc);
    let record = |i: usize, metadata: serde_json::Value| usage::UsageRecord {
        request_id: format!("req-\t\\N\\{i}\n\u{e9}"),
        timestamp: at,
        tenant_id: t.id,
        environment_id: None,
        api_key_id: None,
        region_id: None,
        model_id: Some(model.id),
        model_name: "tab\there \\ \"quoted\" \r\n \u{1F600}".into(),
        node_id: None,
        prompt_tokens: 7,
        completion_tokens: i as i32,
        cached_tokens: 3,
        latency_ms: 42,
        cost_microdollars: 1,
        cost_exact: crosslogic_core::Femtos(1_234_567_891),
        status: UsageStatus::Cancelled,
        metadata,
    };
    let odd = json!({ "k": "a\tb\\c\nd \"e\" \\N", "n": [1, null, 2.5] });
    let first: Vec<_> = (0..3).map(|i| record(i, odd.clone())).collect();
    assert_eq!(usage::insert_batch(p, &first).await.unwrap(), 3);
    #[allow(clippy::type_complexity)]
    let back: Vec<(
        String,
        chrono::DateTime<Utc>,
        String,
        i32,
        i32,
        i32,
        String,
        serde_json::Value,
        rust_decimal::Decimal,
        Option<Uuid>,
    )> = sqlx::query_as(
        "SELECT request_id, timestamp, model_name, completion_tokens, total_tokens, cached_tokens, status, metadata,
                    cost_exact_microdollars, environment_id
               FROM usage_records WHERE tenant_id = $1 ORDER BY completion_tokens",
    )
    .bind(t.id)
    .fetch_all(p)
    .await
    .unwrap();
    assert_eq!(back.len(), 3);
    for (i, row) in back.iter().enumerate() {
        let r = &first[i];
        assert_eq!(row.0, r.request_id);
        assert_eq!(row.1, at, "microseconds kept, UTC");
        assert_eq!(row.2, r.model_name);
        assert_eq!((row.3, row.4, row.5), (i as i32, 7 + i as i32, 3));
        assert_eq!(row.6, "cancelled");
        assert_eq!(row.7, odd);
        assert_eq!(row.8.to_string(), "1.234567891", "exact cost to 10⁻⁹ µ$");
        assert_eq!(row.9, None, "NULL stays NULL");
    }

    // A replay that overlaps: only the new rows are written, once.
    let node = nodes::create(
        p,
        &nodes::NewNode {
            cluster_name: "copy-node".into(),
            provider: Provider::Local,
            region_code: None,
            instance_type: None,
            gpu_type: None,
            gpu_count: 0,
            vram_total_gb: None,
            model_name: "llama-3-8b".into(),
            deployment_id: None,
            spot_instance: false,
            agent_token_hash: None,
            metadata: json!({}),
        },
    )
    .await
    .unwrap();
    let mut second: Vec<_> = (0..6).map(|i| record(i, json!({}))).collect();
    second[5].node_id = Some(node.id);
    assert_eq!(usage::insert_batch(p, &second).await.unwrap(), 3, "3 known, 3 new");
    // A node deleted while its request was in flight: the row goes in with
    // no node, as the deletion would have left it.
    let mut gone = record(9, json!({}));
    gone.node_id = Some(Uuid::new_v4());
    assert_eq!(usage::insert_batch(p, &[gone]).await.unwrap(), 1);
    let nodes_of: Vec<(i32, Option<Uuid>)> =
        sqlx::query_as("SELECT completion_tokens, node_id FROM usage_records WHERE tenant_id = $1 ORDER BY 1")
            .bind(t.id)
            .fetch_all(p)
            .await
            .unwrap();
    assert_eq!(
        nodes_of,
        vec![
            (0, None),
            (1, None),
            (2, None),
            (3, None),
            (4, None),
            (5, Some(node.id)),
            (9, None)
        ]
    );
    db.drop_db().await;
}

/// usage_records' references are checked once per statement (migration
/// 11), with a foreign key's guarantees: a missing reference is a
/// `ForeignKey` error naming the former constraint; deleting a key sets its
/// rows' reference to NULL and deleting the tenant deletes its rows; a
/// referenced id cannot change; and an insert holding a reference makes a
/// concurrent delete of it wait for the insert's commit, so the delete sees
/// (and nulls) the new row instead of leaving it pointing at nothing.
#[tokio::test]
async fn usage_references_keep_foreign_key_guarantees_checked_per_statement() {
    let db = migrated().await;
    let p = &db.pool;
    let t = tenants::create(p, &new_tenant("refs@x.test")).await.unwrap();
    let env = prod_env(p, t.id).await;
    let (k1, k2) = (
        developer_key(p, &env, "refs1").await,
        developer_key(p, &env, "refs2").await,
    );
    let model = catalog::get_model(p, "llama-3-8b").await.unwrap();
    let insert = "INSERT INTO usage_records (request_id, tenant_id, environment_id, api_key_id, model_id, model_name)
                  VALUES ($1, $2, $3, $4, $5, 'llama-3-8b')";
    for (rid, k) in [("r1", k1.id), ("r2", k1.id)] {
        sqlx::query(insert)
            .bind(rid)
            .bind(t.id)
            .bind(env.id)
            .bind(k)
            .bind(model.id)
            .execute(p)
            .await
            .unwrap();
    }

    // A reference to nothing: refused as a foreign key would.
    let err = sqlx::query(insert)
        .bind("r-bad")
        .bind(t.id)
        .bind(env.id)
        .bind(Uuid::new_v4())
        .bind(model.id)
        .execute(p)
        .await
        .unwrap_err();
    let err = DbError::from(err);
    assert!(
        matches!(&err, DbError::ForeignKey { constraint } if constraint == "usage_records_api_key_id_fkey"),
        "{err:?}"
    );
    // Pointing a row at another, missing model: refused too.
    let err = sqlx::query("UPDATE usage_records SET model_id = $1 WHERE request_id = 'r1'")
        .bind(Uuid::new_v4())
        .execute(p)
        .await
        .unwrap_err();
    assert!(matches!(DbError::from(err), DbError::ForeignKey { .. }));
    // A referenced id cannot change.
    let err = sqlx::query("UPDATE models SET id = $1 WHERE id = $2")
        .bind(Uuid::new_v4())
        .bind(model.id)
        .execute(p)
        .await
        .unwrap_err();
    assert!(matches!(DbError::from(err), DbError::ForeignKey { .. }));
    // Nor can a referenced table be emptied under the rows.
    let err = sqlx::query("TRUNCATE api_keys").execute(p).await.unwrap_err();
    assert!(err.to_string().contains("truncate"), "{err}");

    // An insert in flight holds its key: the key's deletion waits for it,
    // then nulls the new row with the others.
    let mut tx = p.begin().await.unwrap();
    sqlx::query(insert)
        .bind("held")
        .bind(t.id)
        .bind(env.id)
        .bind(k2.id)
        .bind(model.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let deleter = tokio::spawn({
        let p = p.clone();
        let k2 = k2.id;
        async move {
            sqlx::query("DELETE FROM api_keys WHERE id = $1")
                .bind(k2)
                .execute(&p)
                .await
                .unwrap()
                .rows_affected()
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM api_keys%'",
        )
        .fetch_one(p)
        .await
        .unwrap();
        if waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delete never waited for the insert"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!deleter.is_finished());
    tx.commit().await.unwrap();
    assert_eq!(deleter.await.unwrap(), 1);
    let held: Option<Uuid> = sqlx::query_scalar("SELECT api_key_id FROM usage_records WHERE request_id = 'held'")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(
        held, None,
        "the row inserted while the key was being deleted lost its key"
    );

    // Deleting a key nulls its rows; deleting the tenant deletes them.
    sqlx::query("DELETE FROM api_keys WHERE id = $1")
        .bind(k1.id)
        .execute(p)
        .await
        .unwrap();
    let keyed: i64 = sqlx::query_scalar("SELECT count(api_key_id) FROM usage_records WHERE tenant_id = $1")
        .bind(t.id)
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(keyed, 0);
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(t.id)
        .execute(p)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records WHERE tenant_id = $1")
        .bind(t.id)
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(left, 0);
    db.drop_db().await;
}

#[tokio::test]
async fn usage_batches_are_idempotent_and_roll_up_per_hour() {
    let db = migrated().await;
    let p = &db.pool;
    let t = tenants::create(p, &new_tenant("u@x.test")).await.unwrap();
    let model = catalog::get_model(p, "llama-3-8b").await.unwrap();
    assert_eq!((model.price_input, model.price_output), (50_000, 50_000));
    let mumbai = catalog::get_region(p, "in-mumbai").await.unwrap();
    assert_eq!(mumbai.cost_multiplier_milli, 700);
    let hour = Utc::now() - Duration::hours(2);
    // 100 + 50 tokens at $0.05/M × 0.7 = 5.25 µ$: rounding each request
    // would bill 5 µ$; ten of them are exactly 52.5 µ$.
    let cost = crosslogic_core::request_cost(100, 50, model.input_price(), model.output_price(), 700);
    assert_eq!(cost, crosslogic_core::Femtos(5_250_000_000));
    let records: Vec<usage::UsageRecord> = (0..10)
        .map(|i| usage::UsageRecord {
            request_id: format!("req-{i}"),
            timestamp: hour,
            tenant_id: t.id,
            environment_id: None,
            api_key_id: None,
            region_id: Some(mumbai.id),
            model_id: Some(model.id),
            model_name: model.name.clone(),
            node_id: None,
            prompt_tokens: 100,
            completion_tokens: 50,
            cached_tokens: 0,
            latency_ms: 10 * (i + 1),
            cost_microdollars: cost.round_micros().0,
            cost_exact: cost,
            status: UsageStatus::Completed,
            metadata: json!({}),
        })
        .collect();
    assert_eq!(usage::insert_batch(p, &records).await.unwrap(), 10);
    assert_eq!(
        usage::insert_batch(p, &records).await.unwrap(),
        0,
        "replayed batch duplicated rows"
    );
    assert_eq!(usage::insert_batch(p, &[]).await.unwrap(), 0);

    let h = crosslogic_core::billing::hour_start(hour);
    assert_eq!(
        rollups::queued_hours(p, Utc::now(), 10).await.unwrap(),
        vec![h],
        "the insert queued its hour for rollup"
    );
    let mut tx = p.begin().await.unwrap();
    let done = rollups::rollup_hour(&mut tx, h).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((done.rows, done.queued, done.folded), (1, 1, false));
    let mut tx = p.begin().await.unwrap();
    let again = rollups::rollup_hour(&mut tx, h).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((again.rows, again.queued), (1, 0), "rollup is an upsert");
    assert!(rollups::queued_hours(p, Utc::now(), 10).await.unwrap().is_empty());
    let rows = rollups::hourly(p, t.id, hour - Duration::hours(1), Utc::now())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one row per key even with NULL environment and key");
    assert_eq!(rows[0].total_requests, 10);
    assert_eq!(rows[0].total_cost_microdollars, 53, "52.5 µ$ rounded once, half up");
    let totals = rollups::totals(
        p,
        rollups::Scope::Tenant {
            tenant_id: t.id,
            api_key_id: None,
        },
        &[h],
        &[],
        rollups::UsageGroup::Model,
        false,
    )
    .await
    .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!((totals[0].requests, totals[0].total_tokens), (10, 1500));
    assert_eq!(totals[0].cost, crosslogic_core::Femtos(52_500_000_000));
    // The same answer from raw rows.
    let raw = rollups::totals(
        p,
        rollups::Scope::Tenant {
            tenant_id: t.id,
            api_key_id: None,
        },
        &[],
        &[(h, h + Duration::hours(1))],
        rollups::UsageGroup::Model,
        false,
    )
    .await
    .unwrap();
    assert_eq!(raw, totals);
    assert_eq!(rows[0].p50_latency_ms, Some(55.0));
    db.drop_db().await;
}

#[tokio::test]
async fn outbox_events_are_claimed_once_across_concurrent_workers() {
    let db = migrated().await;
    let p = &db.pool;
    let mut conn = p.acquire().await.unwrap();
    for i in 0..6u128 {
        let mut event = crosslogic_core::events::example(EventKind::NodeDead);
        if let Event::NodeDead(n) = &mut event {
            n.node_id = Uuid::from_u128(i);
        }
        crosslogic_db::changes::publish(&mut conn, &event).await.unwrap();
    }
    drop(conn);
    let mut a = p.begin().await.unwrap();
    let mut b = p.begin().await.unwrap();
    let got_a = repo::events::claim_pending(&mut a, 4).await.unwrap();
    let got_b = repo::events::claim_pending(&mut b, 4).await.unwrap();
    assert_eq!((got_a.len(), got_b.len()), (4, 2), "SKIP LOCKED must split the events");
    for e in got_a.iter().chain(&got_b) {
        assert!(got_a.iter().filter(|x| x.id == e.id).count() + got_b.iter().filter(|x| x.id == e.id).count() == 1);
    }
    for e in &got_a {
        repo::events::mark_fanned_out(&mut *a, e.id).await.unwrap();
    }
    a.commit().await.unwrap();
    b.rollback().await.unwrap();
    let mut c = p.begin().await.unwrap();
    assert_eq!(
        repo::events::claim_pending(&mut c, 10).await.unwrap().len(),
        2,
        "rolled-back claims return to the queue"
    );
    c.rollback().await.unwrap();
    // Typed events cannot name a bad type; the CHECK constraint still guards the table.
    let bad = sqlx::query("INSERT INTO events (event_type, severity, payload) VALUES ('Not A Type', 'info', '{}')")
        .execute(p)
        .await
        .map_err(DbError::from)
        .unwrap_err();
    assert!(matches!(bad, DbError::Invalid { .. }), "{bad:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn deployments_and_nodes_enforce_their_rules() {
    let db = migrated().await;
    let p = &db.pool;
    let spec = deployments::NewDeployment {
        name: "llama-prod".into(),
        model_name: "llama-3-8b".into(),
        min_replicas: 2,
        max_replicas: 6,
        strategy: DeploymentStrategy::Spread,
        provider: None,
        region: None,
        gpu_type: "auto".into(),
        gpu_count: None,
        capacity_policy: crosslogic_core::CapacityPolicy::Spot,
        on_demand_base: 0,
        spot_overprovision: 1,
        metadata: json!({}),
    };
    let d = deployments::create(p, &spec).await.unwrap();
    let bad_model = deployments::create(
        p,
        &deployments::NewDeployment {
            name: "x".into(),
            model_name: "gpt-9".into(),
            ..spec.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(bad_model, DbError::ForeignKey { .. }), "{bad_model:?}");
    let bad_bounds = deployments::create(
        p,
        &deployments::NewDeployment {
            name: "y".into(),
            min_replicas: 7,
            ..spec.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&bad_bounds, DbError::Invalid { constraint } if constraint == "deployments_replicas_bounds"),
        "{bad_bounds:?}"
    );

    let node = nodes::create(
        p,
        &nodes::NewNode {
            cluster_name: "cic-local-in-mumbai-sim-od-1".into(),
            provider: Provider::Local,
            region_code: Some("in-mumbai".into()),
            instance_type: None,
            gpu_type: Some("L4".into()),
            gpu_count: 1,
            vram_total_gb: Some(24),
            model_name: "llama-3-8b".into(),
            deployment_id: Some(d.id),
            spot_instance: false,
            agent_token_hash: Some("tokhash".into()),
            metadata: json!({}),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (node.status, node.region_code.as_deref()),
        (NodeStatus::Launching, Some("in-mumbai"))
    );
    assert!(node.model_id.is_some());
    let registered = nodes::register(p, node.id, "http://127.0.0.1:9000", Some("127.0.0.1"), None)
        .await
        .unwrap();
    assert_eq!(registered.status, NodeStatus::Initializing);
    assert!(
        nodes::transition(p, node.id, NodeStatus::Active, &[NodeStatus::Initializing])
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        nodes::transition(p, node.id, NodeStatus::Active, &[])
            .await
            .unwrap()
            .is_none(),
        "no-op transition reported a change"
    );
    let st = nodes::heartbeat(
        p,
        node.id,
        &nodes::Load {
            running_requests: 3,
            waiting_requests: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(st, NodeStatus::Active);
    let routable = nodes::routable(p).await.unwrap();
    assert_eq!(routable.len(), 1);
    assert_eq!(routable[0].endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    nodes::record_health_check(p, node.id, HealthCheckStatus::Healthy, Some(3), None, &json!({}))
        .await
        .unwrap();
    assert_eq!(nodes::recent_health_checks(p, node.id, 5).await.unwrap().len(), 1);
    deployments::set_member_status(p, d.id, node.id, DeploymentNodeStatus::Draining)
        .await
        .unwrap();
    let listed = nodes::list(
        p,
        &nodes::NodeFilter {
            deployment_id: Some(d.id),
            ..Default::default()
        },
        10,
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 1);
    // Deleting the deployment row keeps the node (deployment_id set null).
    sqlx::query("DELETE FROM deployments WHERE id = $1")
        .bind(d.id)
        .execute(p)
        .await
        .unwrap();
    assert_eq!(nodes::get(p, node.id).await.unwrap().deployment_id, None);
    db.drop_db().await;
}

#[tokio::test]
async fn catalog_billing_and_notifications_round_trip() {
    let db = migrated().await;
    let p = &db.pool;
    let gpus = catalog::gpu_catalog(p).await.unwrap();
    assert_eq!(gpus.len(), 15);
    let l4 = gpus
        .iter()
        .find(|g| g.gpu_type == "L4" && g.provider == Provider::Aws)
        .unwrap();
    assert_eq!(
        (
            l4.vram_gb,
            l4.on_demand_microdollars_per_hour,
            l4.spot_microdollars_per_hour
        ),
        (24, 800_000, Some(240_000))
    );
    let mut offer = l4.clone();
    offer.provider = Provider::Local;
    offer.on_demand_microdollars_per_hour = 0;
    catalog::upsert_gpu_offer(p, &offer).await.unwrap();
    assert_eq!(catalog::gpu_catalog(p).await.unwrap().len(), 16);
    assert_eq!(catalog::list_regions(p).await.unwrap().len(), 4);
    let m = catalog::set_model_status(p, "gemma-7b", ModelStatus::Deprecated)
        .await
        .unwrap();
    assert_eq!(m.status, ModelStatus::Deprecated);

    let t = tenants::create(p, &new_tenant("b@x.test")).await.unwrap();
    let ev = repo::billing::events::NewBillingEvent {
        tenant_id: t.id,
        event_type: BillingEventType::Usage,
        amount_microdollars: 1234,
        stripe_customer_id: None,
        idempotency_key: Some("usage-2026-11-25T10".into()),
        description: None,
        period_start: None,
        period_end: None,
        status: BillingEventStatus::Pending,
        revision: Some(0),
        next_attempt_at: Some(Utc::now()),
        metadata: json!({}),
    };
    assert!(repo::billing::events::create(p, &ev).await.unwrap().is_some());
    assert!(
        repo::billing::events::create(p, &ev).await.unwrap().is_none(),
        "idempotency key reused"
    );
    let claimed = repo::billing::events::claim_due_exports(p, std::time::Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        repo::billing::events::claim_due_exports(p, std::time::Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "a leased export is not claimed twice"
    );
    let credit = repo::billing::credits::grant(p, t.id, CreditType::SignupBonus, 1000, Some("welcome"), None)
        .await
        .unwrap();
    let mut tx = p.begin().await.unwrap();
    let usable = repo::billing::credits::usable_for_update(&mut tx, t.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(usable.len(), 1);
    repo::billing::credits::take(&mut tx, credit.id, 1000).await.unwrap();
    assert!(
        repo::billing::credits::take(&mut tx, credit.id, 1).await.is_err(),
        "a credit cannot go below zero"
    );
    tx.rollback().await.unwrap();
    let mut tx = p.begin().await.unwrap();
    repo::billing::credits::take(&mut tx, credit.id, 1000).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(repo::billing::credits::balance(p, t.id, Utc::now()).await.unwrap().0, 0);
    assert!(
        repo::billing::stripe::record_webhook(p, "stripe", "evt_1", "invoice.paid", &json!({}))
            .await
            .unwrap()
    );
    assert!(
        !repo::billing::stripe::record_webhook(p, "stripe", "evt_1", "invoice.paid", &json!({}))
            .await
            .unwrap()
    );

    let channel = notifications::create_channel(
        p,
        &notifications::NewChannel {
            tenant_id: Some(t.id),
            channel: NotificationChannel::Slack,
            enabled: true,
            destination: "https://hooks.local/x".into(),
            event_types: Some(vec!["node.dead".to_owned()]),
            settings: Default::default(),
        },
    )
    .await
    .unwrap();
    let dup = notifications::create_channel(
        p,
        &notifications::NewChannel {
            tenant_id: Some(t.id),
            channel: NotificationChannel::Slack,
            enabled: true,
            destination: "https://hooks.local/y".into(),
            event_types: None,
            settings: Default::default(),
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(dup, DbError::Conflict { .. }),
        "one channel per kind and tenant: {dup:?}"
    );
    assert_eq!(notifications::enabled_channels_for(p, &[t.id]).await.unwrap().len(), 1);
    assert!(notifications::enabled_channels_for(p, &[]).await.unwrap().is_empty());
    let mut conn = p.acquire().await.unwrap();
    let e = crosslogic_db::changes::publish(&mut conn, &crosslogic_core::events::example(EventKind::NodeDead))
        .await
        .unwrap();
    drop(conn);
    let row = notifications::NewDelivery {
        event_id: e.id,
        event_type: e.event_type.clone(),
        tenant_id: Some(t.id),
        channel: NotificationChannel::Slack,
        config_id: channel.id,
        max_retries: 8,
    };
    assert_eq!(notifications::enqueue(p, std::slice::from_ref(&row)).await.unwrap(), 1);
    assert_eq!(
        notifications::enqueue(p, &[row]).await.unwrap(),
        0,
        "queueing an event twice for a channel is absorbed"
    );
    let mut conn = p.acquire().await.unwrap();
    let claimed = notifications::claim_due(&mut conn, 10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        notifications::claim_due(&mut conn, 10, std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "a leased row is not claimed again"
    );
    drop(conn);
    let sent = notifications::record_attempt(
        p,
        claimed[0].id,
        claimed[0].lease_until,
        &notifications::Attempt {
            outcome: AttemptOutcome::Sent,
            started_at: Utc::now(),
            duration_ms: 3,
            request_body: None,
            response_status: Some(200),
            response_body: Some("ok".into()),
            error: None,
            next_retry_at: None,
        },
    )
    .await
    .unwrap();
    assert!(sent);
    let d = notifications::get_delivery(p, claimed[0].id).await.unwrap();
    assert!(d.status == DeliveryStatus::Sent && d.sent_at.is_some());
    assert_eq!(notifications::attempts(p, d.id).await.unwrap().len(), 1);
    let mut tx = p.begin().await.unwrap();
    let created = Event::TenantCreated(crosslogic_core::events::TenantEvent {
        tenant_id: t.id,
        name: t.name.clone(),
        email: t.email.clone(),
        status: t.status,
        billing_plan: t.billing_plan,
        reason: None,
    });
    crosslogic_db::changes::record(&mut tx, &Actor::admin(None), &created)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let entries = audit::list(p, Some(t.id), 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].action.as_str(), entries[0].resource_type.as_str()),
        ("tenant.created", "tenant")
    );
    assert_eq!(entries[0].resource_id.as_deref(), Some(t.id.to_string().as_str()));
    db.drop_db().await;
}

#[tokio::test]
async fn auth_relevant_changes_notify_gateways_but_usage_touches_do_not() {
    let db = migrated().await;
    let p = &db.pool;
    let t = tenants::create(p, &new_tenant("n@x.test")).await.unwrap();
    let env = prod_env(p, t.id).await;
    let key = developer_key(p, &env, "hn").await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("crosslogic_auth").await.unwrap();

    api_keys::touch_last_used(p, &[key.id], &[Utc::now()]).await.unwrap();
    api_keys::set_status(p, key.id, ApiKeyStatus::Suspended).await.unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        n.payload(),
        format!("api_keys:{}", key.id),
        "the last_used touch must not notify"
    );

    environments::set_status(p, env.id, EnvironmentStatus::Suspended)
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), format!("environments:{}", env.id));
    tenants::set_status(p, t.id, TenantStatus::Suspended, Some(SuspensionReason::Operator))
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), format!("tenants:{}", t.id));
    drop(listener);
    db.drop_db().await;
}
