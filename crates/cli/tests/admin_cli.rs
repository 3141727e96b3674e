//! `crosslogic tenants|environments|keys …` end to end: the real binary as an
//! HTTP client of a real `crosslogic serve`, and its errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{data_dir, Server};
use crosslogic_testkit::TestDb;
use serde_json::Value;

const TOKEN: &str = "cli-admin-token-0123456789";

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        assert!(self.ok, "command failed: {}{}", self.stdout, self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// The value of a `label:  value` line of a detail view.
    fn field(&self, label: &str) -> String {
        let prefix = format!("{label}:");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {label:?} line in {}", self.stdout))
            .trim()
            .to_owned()
    }
}

/// A client command with only the given token and environment (no
/// database variables at all), stdin not a terminal.
fn command(token: Option<&str>, env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = common::crosslogic(&[]);
    cmd.env_remove("ADMIN_API_TOKEN").env_remove("CROSSLOGIC_URL");
    cmd.envs(env.iter().copied());
    if let Some(t) = token {
        cmd.env("ADMIN_API_TOKEN", t);
    }
    cmd
}

fn client(token: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Out {
    finish(command(token, env).args(args))
}

fn finish(cmd: &mut std::process::Command) -> Out {
    let out = cmd.output().unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn start(db: &TestDb, data: &tempfile::TempDir) -> Server {
    Server::start(
        &[
            ("DATABASE_URL", &db.url),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &[],
    )
    .unwrap()
}

#[tokio::test]
async fn an_operator_manages_tenants_environments_and_keys_from_the_command_line() {
    let db = TestDb::new().await;
    let data = data_dir();
    let server = start(&db, &data);
    let url = server.url("");
    let admin = |args: &[&str]| client(Some(TOKEN), &[], &[args, &["--url", &url]].concat());

    let tenant = admin(&[
        "tenants",
        "create",
        "--name",
        "Acme Corp",
        "--email",
        "Ops@Acme.test",
        "--billing-plan",
        "reserved",
        "--json",
    ])
    .json();
    assert_eq!(
        (tenant["email"].as_str(), tenant["billing_plan"].as_str()),
        (Some("ops@acme.test"), Some("reserved"))
    );
    let tid = tenant["id"].as_str().unwrap().to_owned();

    // The table: a header with the promised columns and a row for the tenant.
    let out = admin(&["tenants", "list"]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["id", "name", "email", "status", "plan", "created"]
    );
    let row = lines.iter().find(|l| l.starts_with(&tid)).expect("tenant row");
    for cell in ["Acme Corp", "ops@acme.test", "active", "reserved"] {
        assert!(row.contains(cell), "{cell} missing from {row}");
    }
    // --json: the API's list as-is.
    let list = admin(&["tenants", "list", "--json"]).json();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"].as_str(), Some(tid.as_str()));

    let out = admin(&["tenants", "update", &tid, "--requests-per-min", "120"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.field("requests/min"), "120");
    assert_eq!(admin(&["tenants", "get", &tid]).field("name"), "Acme Corp");

    let env = admin(&[
        "environments",
        "create",
        "--tenant",
        &tid,
        "--name",
        "prod",
        "--region",
        "us-east",
        "--models",
        "llama-3-8b,bge-large-en",
        "--tokens-per-day",
        "5000",
        "--json",
    ])
    .json();
    assert_eq!(env["model_list"], serde_json::json!(["llama-3-8b", "bge-large-en"]));
    assert_eq!(env["quota_tokens_per_day"], 5000);
    let eid = env["id"].as_str().unwrap().to_owned();
    let out = admin(&["environments", "list", "--tenant", &tid]);
    assert!(
        out.stdout.contains(&eid) && out.stdout.contains("llama-3-8b,bge-large-en"),
        "{}",
        out.stdout
    );

    // A key: the secret is printed once, with the warning.
    let out = admin(&[
        "keys",
        "create",
        "--tenant",
        &tid,
        "--environment",
        &eid,
        "--name",
        "ci",
        "--role",
        "read-only",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let prefix = out.field("prefix");
    let secret = out.field("secret");
    assert!(prefix.starts_with("cl_"), "{prefix}");
    assert!(secret.starts_with(&format!("{prefix}_")), "{secret} / {prefix}");
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("store it now; it cannot be shown again"),
        "{}",
        out.stdout
    );
    assert_eq!(out.field("role"), "read-only");
    let kid = out.field("id");

    // Lists show the prefix, never the secret.
    let out = admin(&["keys", "list", "--tenant", &tid, "--environment", &eid]);
    assert!(out.ok, "{}", out.stderr);
    let row = out.stdout.lines().find(|l| l.starts_with(&kid)).expect("key row");
    assert!(row.contains(&prefix) && row.contains("active"), "{row}");
    assert!(
        !out.stdout.contains(&secret),
        "the secret is shown again: {}",
        out.stdout
    );
    let list = admin(&["keys", "list", "--tenant", &tid, "--json"]);
    assert_eq!(list.json()["data"][0]["key_prefix"].as_str(), Some(prefix.as_str()));
    assert!(!list.stdout.contains(&secret));

    // Revoking without --yes and without a terminal refuses and changes nothing.
    let out = admin(&["keys", "revoke", &kid]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("refusing to revoke key") && out.stderr.contains("--yes"),
        "{}",
        out.stderr
    );
    assert_eq!(admin(&["keys", "get", &kid, "--json"]).json()["status"], "active");

    let out = admin(&["keys", "revoke", &kid, "--yes"]);
    assert!(
        out.ok && out.stdout.contains("is revoked"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(admin(&["keys", "get", &kid]).field("status"), "revoked");
    // The API's refusal comes through as `error: <message>`.
    let out = admin(&["keys", "activate", &kid]);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("error: the key is revoked; create a new key instead"),
        "{}",
        out.stderr
    );

    // An environment delete answers 204: plain text says so, --json prints nothing.
    let dev = admin(&["environments", "create", "--tenant", &tid, "--name", "dev", "--json"]).json();
    let dev_id = dev["id"].as_str().unwrap();
    let out = admin(&["environments", "delete", dev_id]);
    assert!(!out.ok && out.stderr.contains("--yes"), "{}", out.stderr);
    let out = admin(&["environments", "delete", dev_id, "--yes"]);
    assert!(
        out.ok && out.stdout.contains("is deleted"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let envs = admin(&["environments", "list", "--tenant", &tid, "--json"]).json();
    assert_eq!(envs["data"].as_array().unwrap().len(), 1);

    let out = admin(&["tenants", "delete", &tid, "--yes"]);
    assert!(
        out.ok && out.stdout.contains("is deleted"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let deleted = admin(&["tenants", "list", "--status", "deleted", "--json"]).json();
    assert_eq!(deleted["data"][0]["id"].as_str(), Some(tid.as_str()));

    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn api_errors_and_a_wrong_token_are_reported_clearly() {
    let db = TestDb::new().await;
    let data = data_dir();
    let server = start(&db, &data);
    let url = server.url("");

    let out = client(
        Some(TOKEN),
        &[],
        &[
            "tenants",
            "create",
            "--name",
            "Acme",
            "--email",
            "not-an-email",
            "--url",
            &url,
        ],
    );
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("error: email: must be an email address such as ops@example.com"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // CROSSLOGIC_URL works in place of --url.
    let out = client(
        Some("not-the-token-0123456789"),
        &[("CROSSLOGIC_URL", &url)],
        &["tenants", "list"],
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("invalid admin token")
            && out.stderr.contains("401")
            && out.stderr.contains("ADMIN_API_TOKEN"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("not-the-token"),
        "the token is echoed: {}",
        out.stderr
    );

    drop(server);
    db.drop_db().await;
}

#[test]
fn client_commands_need_no_database_and_explain_a_missing_token_or_server() {
    let cwd = tempfile::tempdir().unwrap();
    let free_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{free_port}");

    let out = finish(command(None, &[]).current_dir(cwd.path()).args([
        "keys",
        "list",
        "--tenant",
        "8d4b3c1e-0000-4000-8000-000000000001",
        "--url",
        &url,
    ]));
    assert!(!out.ok);
    assert!(
        out.stderr.contains("ADMIN_API_TOKEN is not set") && out.stderr.contains("export ADMIN_API_TOKEN"),
        "{}",
        out.stderr
    );

    let out = finish(
        command(Some(TOKEN), &[])
            .current_dir(cwd.path())
            .args(["tenants", "list", "--url", &url]),
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains(&format!(
            "cannot reach crosslogic at {url}: is `crosslogic serve` running?"
        )),
        "{}",
        out.stderr
    );
    // No embedded database was started (nor its data directory created).
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);

    let out = client(None, &[], &["keys", "revoke", "--help"]);
    assert!(
        out.ok && out.stdout.contains("ADMIN_API_TOKEN") && out.stdout.contains("--yes"),
        "{}",
        out.stdout
    );
}
