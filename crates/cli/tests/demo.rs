//! The first minute: `crosslogic serve --demo` (what `scripts/serve.sh`
//! runs) on a fresh data directory prints a banner once its nodes serve,
//! and the banner's own Python lines, run as printed with the official
//! OpenAI SDK, get a chat completion and an embedding. A second start
//! reuses the demo (the key is not shown again); `--demo` refuses a
//! database it did not set up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Demo {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Demo {
    fn start(data: &std::path::Path) -> Demo {
        let mut child = common::crosslogic(&[("CROSSLOGIC_DATA_DIR", data.to_str().unwrap())])
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .env_remove("ADMIN_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo { child, lines }
    }

    /// The banner's lines (up to its last, "crosslogic deployments list…").
    fn banner(&self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let end = l.contains("crosslogic deployments list");
                    out.push(l);
                    if end {
                        return out;
                    }
                }
                Err(_) => panic!("no banner within {within:?}; got {out:?}"),
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[test]
fn the_demo_banner_is_all_a_newcomer_needs_for_a_completion_and_an_embedding() {
    let data = common::data_dir();
    let started = Instant::now();
    let demo = Demo::start(data.path());
    let banner = demo.banner(Duration::from_secs(60));
    let ready_after = started.elapsed();
    let text = banner.join("\n");
    assert!(text.contains("API key (shown once"), "{text}");
    assert!(text.contains("curl http://127.0.0.1:"), "{text}");
    let reference = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("API reference: "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no API reference in {text}"));
    let (status, html) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let resp = reqwest::get(reference).await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    });
    assert_eq!(status, 200, "{reference}");
    assert!(html.contains("swagger-ui"), "{html}");
    let console = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("Console: "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no console URL in {text}"));
    let (status, html) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let resp = reqwest::get(console).await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    });
    assert_eq!(status, 200, "{console}");
    assert!(html.contains("Sign in to CrossLogic"), "{html}");
    // The banner's Python lines, run exactly as printed.
    let python: Vec<&str> = banner
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("from openai") || l.starts_with("client =") || l.starts_with("print("))
        .collect();
    assert_eq!(python.len(), 4, "{text}");
    let interpreter = std::env::var("CROSSLOGIC_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(interpreter)
        .args(["-c", &python.join("\n")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), 2, "{stdout}");
    assert!(!printed[0].is_empty(), "a completion: {stdout}");
    assert!(printed[1].parse::<usize>().unwrap() > 0, "an embedding: {stdout}");
    println!(
        "banner after {:.1} s, completion and embedding after {:.1} s",
        ready_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let token = std::fs::read_to_string(data.path().join("admin-token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.path().join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !text.contains(token.trim()),
        "the operator token itself is never printed"
    );
    drop(demo);

    // A later start reuses the demo; the key is not shown again.
    let again = Demo::start(data.path());
    let text = again.banner(Duration::from_secs(60)).join("\n");
    assert!(
        text.contains("not shown again") && text.contains("crosslogic keys create"),
        "{text}"
    );
    assert!(!text.contains("shown once"), "{text}");
    assert_eq!(std::fs::read_to_string(data.path().join("admin-token")).unwrap(), token);
    drop(again);
    common::kill_local_nodes(&data.path().join("nodes"));
}

#[tokio::test]
async fn demo_mode_refuses_a_database_it_did_not_set_up() {
    let db = crosslogic_testkit::TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    crosslogic_testkit::fixtures::tenant(&db.pool, "real@customer.test").await;
    let data = common::data_dir();
    let (ok, out) = common::run(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
        ],
        &["serve", "--demo", "--listen", "127.0.0.1:0"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("--demo only runs on an empty database"), "{out}");
    db.drop_db().await;
}
