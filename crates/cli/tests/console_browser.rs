//! The web console in a real browser: headless Chromium (Debian's
//! `chromium`) driven by Playwright (`tests/browser/console_e2e.py`) against
//! the real binary with the `local` provisioner. The operator signs in,
//! creates tenants, keys and a deployment, watches its node become active
//! and sees traffic in the charts; a tenant signs in with its key, sees its
//! own usage and not another tenant's, creates and revokes a key; CSRF,
//! idle expiry and sign-out hold. Screenshots land in
//! `$CARGO_TARGET_TMPDIR/console-browser/` for a person to look at.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Server;
use crosslogic_testkit::TestDb;

const TOKEN: &str = "console-browser-admin-token-0123456789";

fn python() -> String {
    std::env::var("CROSSLOGIC_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_and_tenant_journeys_work_in_a_real_browser() {
    let chromium = std::env::var("CROSSLOGIC_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is missing at {chromium}: run ./scripts/test.sh (it installs Debian's chromium), \
         or `sudo apt-get install -y chromium`, or set CROSSLOGIC_TEST_CHROMIUM"
    );
    let db = TestDb::new().await;
    let data = common::data_dir();
    let server = Server::start(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
            // The tenant's webhook receiver runs on loopback.
            ("NOTIFY_ALLOW_PRIVATE_TARGETS", "true"),
        ],
        &["--provisioner", "local"],
    )
    .unwrap();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-browser");
    let _ = std::fs::remove_dir_all(&out);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/console_e2e.py");
    let base = server.url("");
    let result = tokio::task::spawn_blocking({
        let (db_url, out) = (db.url.clone(), out.clone());
        move || {
            Command::new(python())
                .arg(script)
                .env("BASE", base.trim_end_matches('/'))
                .env("ADMIN_TOKEN", TOKEN)
                .env("OUT", &out)
                .env("DATABASE_URL", db_url)
                .env("CHROMIUM", chromium)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    common::kill_local_nodes(&data.path().join("nodes"));
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    println!("{stdout}");
    let log = server.drain_log();
    assert!(
        result.status.success(),
        "browser journeys failed:\n{stdout}\n{stderr}\nserver log (last 40 lines):\n{}",
        log[log.len().saturating_sub(40)..].join("\n")
    );
    assert!(stdout.contains("console browser journeys passed"), "{stdout}");
    for name in [
        "01-sign-in-refused",
        "05-nodes-active",
        "07-overview-traffic",
        "09-tenant-usage",
    ] {
        let png = out.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{} is not a screenshot",
            png.display()
        );
    }
    // Neither the operator token nor a key secret reached the server's log.
    let all = log.join("\n");
    assert!(!all.contains(TOKEN), "the operator token was logged");
    let secrets: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(out.join("secrets.json")).unwrap()).unwrap();
    assert_eq!(secrets.len(), 3);
    for s in &secrets {
        assert!(!all.contains(s.as_str()), "a key secret was logged");
    }
    std::fs::remove_file(out.join("secrets.json")).unwrap();
    db.drop_db().await;
}
