//! Helpers for end-to-end tests that run the real `crosslogic` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code, clippy::zombie_processes)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_crosslogic");

/// A `crosslogic` command with a clean database environment.
pub fn crosslogic(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "DB_HOST",
        "DB_PORT",
        "DB_USER",
        "DB_PASSWORD",
        "DB_NAME",
        "DB_SSL_MODE",
        "CROSSLOGIC_DATA_DIR",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs to completion and returns stdout+stderr text with the status.
pub fn run(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let out: Output = crosslogic(env).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running `crosslogic serve`.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `serve --listen 127.0.0.1:0` and waits for its address.
    pub fn start(env: &[(&str, &str)], extra: &[&str]) -> Result<Server, String> {
        let mut child = crosslogic(env)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut seen = String::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if line.contains("crosslogic is serving") {
                        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                        let addr = v["fields"]["addr"].as_str().unwrap().to_owned();
                        return Ok(Server { child, addr, log: rx });
                    }
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // Drain what is left of the log.
                        while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                            seen.push_str(&l);
                            seen.push('\n');
                        }
                        return Err(format!("exited with {status}:\n{seen}"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    return Err(format!("exited with {status}:\n{seen}"));
                }
            }
        }
        let _ = child.kill();
        Err(format!("did not start within 90s:\n{seen}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a signal and waits (up to 60 s) for the exit status.
    pub fn signal_and_wait(mut self, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit within 60s of {sig}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Log lines received so far.
    pub fn drain_log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.child.wait();
        }
    }
}

/// A data directory the embedded PostgreSQL can use (also when root).
pub fn data_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `crosslogic engine-sim` serving `model` on a free port and waits
/// until it answers; returns the process and its base URL.
pub async fn start_engine_sim(model: &str) -> (Proc, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .args(["engine-sim", "--served-model-name", model, "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/health")).await.is_err() {
        assert!(Instant::now() < deadline, "engine-sim did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Proc(child), url)
}

/// Through the admin API of `server`: a tenant, an environment in `region`
/// and a key with the extra fields `key` (e.g. limits); returns
/// (tenant id, environment id, key secret, key id).
pub async fn tenant_with_key(
    server: &Server,
    token: &str,
    region: &str,
    key: serde_json::Value,
) -> (String, String, String, String) {
    let http = reqwest::Client::new();
    let post = |path: String, body: serde_json::Value| {
        let http = http.clone();
        let url = server.url(&format!("/admin/v1{path}"));
        let token = token.to_owned();
        async move {
            let resp = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
            resp.json::<serde_json::Value>().await.unwrap()
        }
    };
    let email = format!("{}@e2e.test", uuid::Uuid::new_v4().simple());
    let tenant = post("/tenants".into(), serde_json::json!({ "name": "E2E", "email": email })).await;
    let tid = tenant["id"].as_str().unwrap().to_owned();
    let env = post(
        format!("/tenants/{tid}/environments"),
        serde_json::json!({ "name": "prod", "region": region }),
    )
    .await;
    let eid = env["id"].as_str().unwrap().to_owned();
    let mut body = key;
    body["environment_id"] = serde_json::json!(eid);
    let k = post(format!("/tenants/{tid}/keys"), body).await;
    (
        tid,
        eid,
        k["key_secret"].as_str().unwrap().to_owned(),
        k["id"].as_str().unwrap().to_owned(),
    )
}

/// `GET /admin/v1/nodes/{id}/logs`: the page, and its lines' text.
pub async fn node_logs(server: &Server, token: &str, id: impl std::fmt::Display) -> (serde_json::Value, Vec<String>) {
    let page: serde_json::Value = reqwest::Client::new()
        .get(server.url(&format!("/admin/v1/nodes/{id}/logs")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lines = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect();
    (page, lines)
}

/// Kills the node processes the `local` provisioner recorded in
/// `nodes_dir` (they outlive the control plane by design).
pub fn kill_local_nodes(nodes_dir: &std::path::Path) {
    for entry in std::fs::read_dir(nodes_dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
            for pid in v["pids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_i64)
            {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
