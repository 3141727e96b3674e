//! Configuration parsing: every variable, good and bad values.

use super::*;
use secrecy::ExposeSecret;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn err(pairs: &[(&str, &str)]) -> ConfigError {
    Config::from_vars(&vars(pairs)).unwrap_err()
}

fn external(cfg: &Config) -> &ExternalDatabase {
    match &cfg.database.target {
        DatabaseTarget::External(db) => db,
        DatabaseTarget::Embedded => panic!("expected an external database"),
    }
}

#[test]
fn nothing_configured_means_embedded_database_and_seed_pool_defaults() {
    let cfg = Config::from_vars(&HashMap::new()).unwrap();
    assert!(matches!(cfg.database.target, DatabaseTarget::Embedded));
    assert_eq!(cfg.database.pool.max_open, 25);
    assert_eq!(cfg.database.pool.max_idle, 5);
    assert_eq!(cfg.database.pool.conn_max_lifetime, Some(Duration::from_secs(300)));
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.data_dir, PathBuf::from(".crosslogic"));
    assert_eq!(cfg.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(cfg.log_format, LogFormat::Text);
}

#[test]
fn database_url_is_parsed_into_its_parts() {
    let cfg = Config::from_vars(&vars(&[(
        "DATABASE_URL",
        "postgresql://crosslogic:s%40cret@db.example.com:6543/crosslogic_iaas?sslmode=require",
    )]))
    .unwrap();
    let db = external(&cfg);
    assert_eq!(db.host, "db.example.com");
    assert_eq!(db.port, 6543);
    assert_eq!(db.user, "crosslogic");
    assert_eq!(db.password.as_ref().unwrap().expose_secret(), "s@cret");
    assert_eq!(db.dbname, "crosslogic_iaas");
    assert_eq!(db.ssl_mode, SslMode::Require);
}

#[test]
fn database_url_accepts_a_socket_directory_in_host_parameter() {
    let cfg = Config::from_vars(&vars(&[(
        "DATABASE_URL",
        "postgres:///mydb?host=/var/run/postgresql&user=me",
    )]))
    .unwrap();
    let db = external(&cfg);
    assert_eq!(db.host, "/var/run/postgresql");
    assert_eq!(db.user, "me");
    assert_eq!(db.dbname, "mydb");
}

#[test]
fn db_ssl_mode_overrides_the_url_and_accepts_the_four_modes() {
    for (mode, want) in [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-full", SslMode::VerifyFull),
    ] {
        let cfg = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u@h/db?sslmode=disable"),
            ("DB_SSL_MODE", mode),
        ]))
        .unwrap();
        assert_eq!(external(&cfg).ssl_mode, want);
    }
    let e = err(&[("DB_HOST", "h"), ("DB_SSL_MODE", "verify-ca")]);
    assert_eq!(e.variable, "DB_SSL_MODE");
    assert!(e.message.contains("disable, prefer, require or verify-full"), "{e}");
}

#[test]
fn db_variables_build_an_external_target_with_seed_defaults() {
    let cfg = Config::from_vars(&vars(&[("DB_HOST", "localhost"), ("DB_PASSWORD", "pw")])).unwrap();
    let db = external(&cfg);
    assert_eq!(
        (db.host.as_str(), db.port, db.user.as_str(), db.dbname.as_str()),
        ("localhost", 5432, "crosslogic", "crosslogic_iaas")
    );
    assert_eq!(db.ssl_mode, SslMode::Prefer);

    let cfg = Config::from_vars(&vars(&[
        ("DB_HOST", "10.0.0.5"),
        ("DB_PORT", "6432"),
        ("DB_USER", "svc"),
        ("DB_PASSWORD", "pw"),
        ("DB_NAME", "prod"),
        ("DB_SSL_MODE", "require"),
    ]))
    .unwrap();
    let db = external(&cfg);
    assert_eq!(
        (db.host.as_str(), db.port, db.user.as_str(), db.dbname.as_str()),
        ("10.0.0.5", 6432, "svc", "prod")
    );
}

#[test]
fn bad_values_name_the_variable_and_what_is_accepted() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (&[("DB_HOST", "h"), ("DB_PORT", "abc")], "DB_PORT", "1 to 65535"),
        (&[("DB_HOST", "h"), ("DB_PORT", "70000")], "DB_PORT", "1 to 65535"),
        (&[("DB_MAX_OPEN_CONNS", "0")], "DB_MAX_OPEN_CONNS", "1 to 10000"),
        (&[("DB_MAX_OPEN_CONNS", "-3")], "DB_MAX_OPEN_CONNS", "1 to 10000"),
        (&[("DB_MAX_IDLE_CONNS", "many")], "DB_MAX_IDLE_CONNS", "0 to 10000"),
        (&[("DB_CONN_MAX_LIFETIME", "5")], "DB_CONN_MAX_LIFETIME", "no unit"),
        (
            &[("DB_CONN_MAX_LIFETIME", "five minutes")],
            "DB_CONN_MAX_LIFETIME",
            "30s, 5m, 1h",
        ),
        (&[("DATABASE_URL", "mysql://u:p@h/db")], "DATABASE_URL", "postgresql://"),
        (&[("DATABASE_URL", "not a url")], "DATABASE_URL", "postgresql://"),
        (
            &[("DATABASE_URL", "postgres://u@h:5432/")],
            "DATABASE_URL",
            "no database name",
        ),
        (
            &[("DATABASE_URL", "postgres://u@h/db?pool=3")],
            "DATABASE_URL",
            "unsupported parameter",
        ),
        (&[("DB_PASSWORD", "pw")], "DB_PASSWORD", "DB_HOST"),
        (&[("LISTEN_ADDR", "8080")], "LISTEN_ADDR", "IP:PORT"),
        (&[("REDIS_URL", "http://x")], "REDIS_URL", "redis://"),
        (&[("ADMIN_API_TOKEN", "short")], "ADMIN_API_TOKEN", "16 characters"),
        (
            &[("NODE_DEAD_AFTER", "10s")],
            "NODE_DEAD_AFTER",
            "longer than NODE_UNHEALTHY_AFTER",
        ),
        (&[("NODE_UNHEALTHY_AFTER", "later")], "NODE_UNHEALTHY_AFTER", "30s"),
        (
            &[("NODE_REGISTRATION_TOKEN", "short")],
            "NODE_REGISTRATION_TOKEN",
            "16 characters",
        ),
        (&[("SHUTDOWN_TIMEOUT", "soon")], "SHUTDOWN_TIMEOUT", "30s"),
        (&[("LOG_FORMAT", "xml")], "LOG_FORMAT", "text or json"),
        (&[("GLOBAL_REQUESTS_PER_MIN", "0")], "GLOBAL_REQUESTS_PER_MIN", "from 1"),
        (&[("GLOBAL_TOKENS_PER_MIN", "many")], "GLOBAL_TOKENS_PER_MIN", "from 1"),
        (&[("GLOBAL_CONCURRENCY", "-1")], "GLOBAL_CONCURRENCY", "from 1"),
        (
            &[("RATE_LIMIT_FAILURE_MODE", "maybe")],
            "RATE_LIMIT_FAILURE_MODE",
            "open or closed",
        ),
        (
            &[("RATE_LIMIT_DEFAULT_MAX_TOKENS", "0")],
            "RATE_LIMIT_DEFAULT_MAX_TOKENS",
            "from 1",
        ),
        (
            &[("CONCURRENCY_LEASE_TTL", "0")],
            "CONCURRENCY_LEASE_TTL",
            "longer than 0",
        ),
    ];
    for (pairs, var, needle) in cases {
        let e = err(pairs);
        assert_eq!(e.variable, *var, "for {pairs:?}");
        assert!(e.to_string().contains(needle), "for {pairs:?}: {e}");
    }
}

#[test]
fn durations_accept_the_forms_the_seed_uses() {
    for (text, secs) in [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("90s", 90)] {
        let cfg = Config::from_vars(&vars(&[("DB_CONN_MAX_LIFETIME", text)])).unwrap();
        assert_eq!(
            cfg.database.pool.conn_max_lifetime,
            Some(Duration::from_secs(secs)),
            "{text}"
        );
    }
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    let cfg = Config::from_vars(&vars(&[("DB_CONN_MAX_LIFETIME", "0")])).unwrap();
    assert_eq!(cfg.database.pool.conn_max_lifetime, None);
}

#[test]
fn pool_sizes_are_read_and_idle_is_capped_by_open() {
    let cfg = Config::from_vars(&vars(&[("DB_MAX_OPEN_CONNS", "50"), ("DB_MAX_IDLE_CONNS", "10")])).unwrap();
    assert_eq!((cfg.database.pool.max_open, cfg.database.pool.max_idle), (50, 10));
    let cfg = Config::from_vars(&vars(&[("DB_MAX_OPEN_CONNS", "3"), ("DB_MAX_IDLE_CONNS", "10")])).unwrap();
    assert_eq!((cfg.database.pool.max_open, cfg.database.pool.max_idle), (3, 3));
}

#[test]
fn secrets_never_appear_in_errors_debug_or_the_report() {
    let secret = "hunter2-very-secret";
    let url = format!("postgresql://crosslogic:{secret}@db:5432/x?sslmode=bogus");
    let e = err(&[("DATABASE_URL", &url)]);
    assert!(!e.to_string().contains(secret));

    let url = format!("postgresql://crosslogic:{secret}@db:5432/x");
    let cfg = Config::from_vars(&vars(&[
        ("DATABASE_URL", &url),
        ("REDIS_URL", &format!("redis://:{secret}@localhost:6379/0")),
        ("ADMIN_API_TOKEN", &format!("{secret}-admin-token")),
    ]))
    .unwrap();
    let report = format!("{:?}", cfg.report());
    assert!(!report.contains(secret), "{report}");
    assert!(report.contains("postgresql://crosslogic:****@db:5432/x"), "{report}");
    assert!(!format!("{cfg:?}").contains(secret));

    let cfg = Config::from_vars(&vars(&[("DB_HOST", "db"), ("DB_PASSWORD", secret)])).unwrap();
    assert!(!format!("{:?} {cfg:?}", cfg.report()).contains(secret));
}

#[test]
fn limit_settings_have_defaults_and_accept_overrides() {
    let cfg = Config::from_vars(&HashMap::new()).unwrap();
    assert_eq!(cfg.limits.global_requests_per_min, None);
    assert!(cfg.limits.fail_open);
    assert_eq!(
        (cfg.limits.default_max_tokens, cfg.limits.lease_ttl),
        (512, Duration::from_secs(600))
    );
    let cfg = Config::from_vars(&vars(&[
        ("GLOBAL_REQUESTS_PER_MIN", "100000"),
        ("GLOBAL_TOKENS_PER_MIN", "5000000"),
        ("GLOBAL_CONCURRENCY", "2000"),
        ("RATE_LIMIT_FAILURE_MODE", "closed"),
        ("RATE_LIMIT_DEFAULT_MAX_TOKENS", "1024"),
        ("CONCURRENCY_LEASE_TTL", "2m"),
    ]))
    .unwrap();
    assert_eq!(cfg.limits.global_requests_per_min, Some(100_000));
    assert_eq!(cfg.limits.global_tokens_per_min, Some(5_000_000));
    assert_eq!(cfg.limits.global_concurrency, Some(2000));
    assert!(!cfg.limits.fail_open);
    assert_eq!(
        (cfg.limits.default_max_tokens, cfg.limits.lease_ttl),
        (1024, Duration::from_secs(120))
    );
}

#[test]
fn provision_settings_have_defaults_and_validate_values() {
    let cfg = Config::from_vars(&vars(&[])).unwrap();
    assert_eq!(cfg.provision.skypilot_clouds, ["aws", "gcp", "azure"]);
    assert_eq!(cfg.provision.skypilot_disk_size_gb, 256);
    assert!(cfg.provision.control_plane_url.is_none() && cfg.provision.skypilot_api_server_url.is_none());

    let cfg = Config::from_vars(&vars(&[
        ("CONTROL_PLANE_URL", "https://control.example.com/"),
        ("SKYPILOT_API_SERVER_URL", "http://127.0.0.1:46580"),
        ("SKYPILOT_API_SERVER_TOKEN", "sky_token_very_secret"),
        ("SKYPILOT_CLOUDS", " GCP , aws,gcp "),
        ("SKYPILOT_DISK_SIZE_GB", "512"),
        ("VLLM_VERSION", "0.8.5"),
    ]))
    .unwrap();
    assert_eq!(
        cfg.provision.control_plane_url.as_deref(),
        Some("https://control.example.com")
    );
    assert_eq!(cfg.provision.skypilot_clouds, ["gcp", "aws"]);
    assert_eq!(cfg.provision.skypilot_disk_size_gb, 512);
    let report = format!("{:?}", cfg.report());
    assert!(report.contains("SKYPILOT_API_SERVER_URL") && !report.contains("sky_token_very_secret"));

    let e = err(&[("SKYPILOT_CLOUDS", "aws,lambda")]);
    assert_eq!(e.variable, "SKYPILOT_CLOUDS");
    assert!(e.message.contains("lambda"), "{e}");
    assert_eq!(err(&[("SKYPILOT_CLOUDS", " , ")]).variable, "SKYPILOT_CLOUDS");
    assert_eq!(err(&[("CONTROL_PLANE_URL", "ftp://x")]).variable, "CONTROL_PLANE_URL");
    assert_eq!(
        err(&[("SKYPILOT_API_SERVER_URL", "localhost:46580")]).variable,
        "SKYPILOT_API_SERVER_URL"
    );
    assert_eq!(err(&[("SKYPILOT_DISK_SIZE_GB", "5")]).variable, "SKYPILOT_DISK_SIZE_GB");
}

#[test]
fn autoscale_settings_have_documented_defaults_and_validate() {
    let p = Config::from_vars(&vars(&[])).unwrap().provision;
    assert_eq!(p.autoscale_target_in_flight, 8);
    assert_eq!(p.autoscale_upscale_delay, Duration::from_secs(30));
    assert_eq!(p.autoscale_downscale_delay, Duration::from_secs(600));
    assert_eq!(p.node_drain_timeout, Duration::from_secs(600));
    assert_eq!(p.reconcile_interval, Duration::from_secs(2));
    let p = Config::from_vars(&vars(&[
        ("AUTOSCALE_TARGET_IN_FLIGHT", "4"),
        ("AUTOSCALE_UPSCALE_DELAY", "1s"),
        ("AUTOSCALE_DOWNSCALE_DELAY", "5m"),
        ("NODE_DRAIN_TIMEOUT", "90s"),
        ("RECONCILE_INTERVAL", "500ms"),
    ]))
    .unwrap()
    .provision;
    assert_eq!(p.autoscale_target_in_flight, 4);
    assert_eq!(p.autoscale_upscale_delay, Duration::from_secs(1));
    assert_eq!(p.autoscale_downscale_delay, Duration::from_secs(300));
    assert_eq!(p.node_drain_timeout, Duration::from_secs(90));
    assert_eq!(p.reconcile_interval, Duration::from_millis(500));
    assert_eq!(
        err(&[("AUTOSCALE_TARGET_IN_FLIGHT", "0")]).variable,
        "AUTOSCALE_TARGET_IN_FLIGHT"
    );
    assert_eq!(
        err(&[("AUTOSCALE_UPSCALE_DELAY", "soon")]).variable,
        "AUTOSCALE_UPSCALE_DELAY"
    );
    assert_eq!(err(&[("RECONCILE_INTERVAL", "1ms")]).variable, "RECONCILE_INTERVAL");
}

#[test]
fn notify_settings_have_defaults_and_name_the_bad_variable() {
    let cfg = Config::from_vars(&HashMap::new()).unwrap();
    let n = &cfg.notify;
    assert!(n.discord_webhook_url.is_none() && n.smtp.is_none() && n.email_to.is_empty());
    assert_eq!(n.min_severity, Severity::Warning);
    assert_eq!(n.retry_schedule.len(), 10, "the Standard Webhooks schedule");
    assert_eq!(n.retry_schedule[2], Duration::from_secs(300));
    assert_eq!(n.timeout, Duration::from_secs(15));
    assert!(!n.allow_private_targets);
    assert_eq!(n.key_expiry_warning, Duration::from_secs(3 * 86_400));
    assert_eq!(n.deployment_degraded_after, Duration::from_secs(300));

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let cfg = Config::from_vars(&vars(&[
        ("NOTIFY_DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/tok"),
        ("NOTIFY_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/tok"),
        ("NOTIFY_EMAIL_TO", "ops@acme.test, oncall@acme.test"),
        ("NOTIFY_WEBHOOK_URL", "https://hooks.acme.test/in"),
        ("NOTIFY_WEBHOOK_SECRET", secret),
        ("NOTIFY_MIN_SEVERITY", "critical"),
        ("NOTIFY_RETRY_SCHEDULE", "0s,1m,1h"),
        ("NOTIFY_ALLOW_PRIVATE_TARGETS", "true"),
        ("SMTP_HOST", "mail.acme.test"),
        ("SMTP_USER", "alerts"),
        ("SMTP_PASSWORD", "p@ss"),
        ("SMTP_FROM", "CrossLogic <alerts@acme.test>"),
    ]))
    .unwrap();
    let n = &cfg.notify;
    assert_eq!(n.email_to, ["ops@acme.test", "oncall@acme.test"]);
    assert_eq!(n.min_severity, Severity::Critical);
    assert_eq!(
        n.retry_schedule,
        [Duration::ZERO, Duration::from_secs(60), Duration::from_secs(3600)]
    );
    let smtp = n.smtp.as_ref().unwrap();
    assert_eq!(
        smtp.url.expose_secret(),
        "smtp://alerts:p%40ss@mail.acme.test:587?tls=required",
        "STARTTLS on the submission port by default"
    );
    let report = format!("{:?}", cfg.report());
    for leaked in ["tok", "p@ss", "p%40ss", secret] {
        assert!(!report.contains(leaked), "{leaked} in the report: {report}");
    }
    assert!(report.contains("https://discord.com/…"), "{report}");

    for (pairs, var) in [
        (
            vec![("NOTIFY_SLACK_WEBHOOK_URL", "hooks.slack.com/x")],
            "NOTIFY_SLACK_WEBHOOK_URL",
        ),
        (vec![("NOTIFY_WEBHOOK_URL", "https://h.test/")], "NOTIFY_WEBHOOK_SECRET"),
        (vec![("NOTIFY_WEBHOOK_SECRET", "not-a-whsec")], "NOTIFY_WEBHOOK_SECRET"),
        (
            vec![("NOTIFY_WEBHOOK_SECRET", "whsec_c2hvcnQ=")],
            "NOTIFY_WEBHOOK_SECRET",
        ),
        (vec![("NOTIFY_EMAIL_TO", "ops at acme")], "NOTIFY_EMAIL_TO"),
        (vec![("NOTIFY_MIN_SEVERITY", "loud")], "NOTIFY_MIN_SEVERITY"),
        (vec![("NOTIFY_RETRY_SCHEDULE", "5s,soon")], "NOTIFY_RETRY_SCHEDULE"),
        (vec![("NOTIFY_TIMEOUT", "0s")], "NOTIFY_TIMEOUT"),
        (
            vec![("NOTIFY_ALLOW_PRIVATE_TARGETS", "maybe")],
            "NOTIFY_ALLOW_PRIVATE_TARGETS",
        ),
        (vec![("SMTP_HOST", "mail.acme.test")], "SMTP_FROM"),
        (vec![("SMTP_URL", "http://mail/"), ("SMTP_FROM", "a@b.co")], "SMTP_URL"),
        (
            vec![
                ("SMTP_HOST", "m.test"),
                ("SMTP_TLS", "sometimes"),
                ("SMTP_FROM", "a@b.co"),
            ],
            "SMTP_TLS",
        ),
        (vec![("KEY_EXPIRY_WARNING", "3")], "KEY_EXPIRY_WARNING"),
        (
            vec![("DEPLOYMENT_DEGRADED_AFTER", "later")],
            "DEPLOYMENT_DEGRADED_AFTER",
        ),
    ] {
        assert_eq!(err(&pairs).variable, var, "{pairs:?}");
    }
}
