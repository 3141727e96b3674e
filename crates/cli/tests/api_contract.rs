//! The API's contract, checked against the real `crosslogic` binary:
//! `GET /openapi.json` is a valid OpenAPI 3.1 document (checked by the
//! `openapi-spec-validator` package) whose operations are exactly the
//! routes the server answers, `/docs` serves its reference from the binary,
//! and Schemathesis, driven by the document alone, fuzzes the admin,
//! self-service, inference (a simulator node behind them) and webhook APIs
//! without a 5xx, an undocumented status or a body that breaks its schema.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Proc, Server};
use crosslogic_testkit::{fixtures, TestDb};
use serde_json::{json, Value};

const TOKEN: &str = "contract-admin-token-0123456789";
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn python() -> String {
    std::env::var("CROSSLOGIC_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A server on a throwaway database with simulator nodes serving
/// `llama-3-8b` and `bge-large-en` in `us-east`.
struct Platform {
    db: TestDb,
    server: Server,
    _sims: [Proc; 2],
    _data: tempfile::TempDir,
}

async fn platform() -> Platform {
    let db = TestDb::new().await;
    let (chat, chat_url) = common::start_engine_sim("llama-3-8b").await;
    let (embedding, embedding_url) = common::start_engine_sim("bge-large-en").await;
    let data = common::data_dir();
    let server = Server::start(
        &[
            ("DATABASE_URL", &db.url),
            ("ADMIN_API_TOKEN", TOKEN),
            ("CROSSLOGIC_DATA_DIR", data.path().to_str().unwrap()),
            ("STRIPE_WEBHOOK_SECRET", "whsec_contract_0123456789"),
            // The simulator nodes are rows without agents: no heartbeat
            // comes, so they must not turn unhealthy during a long run.
            ("NODE_UNHEALTHY_AFTER", "1h"),
            ("NODE_DEAD_AFTER", "2h"),
        ],
        &[],
    )
    .unwrap();
    fixtures::active_node(&db.pool, &chat_url, "llama-3-8b", "us-east").await;
    fixtures::active_node(&db.pool, &embedding_url, "bge-large-en", "us-east").await;
    Platform {
        db,
        server,
        _sims: [chat, embedding],
        _data: data,
    }
}

async fn document(server: &Server) -> Value {
    let resp = reqwest::get(server.url("/openapi.json")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Every (method, path) of the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.push((m.to_owned(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_exactly_the_routes_served() {
    let p = platform().await;
    let doc = document(&p.server).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    // A standard validator accepts it (references resolve, ids are unique).
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every API is there, each operation says how to authenticate with a
    // scheme the document defines, and every error is the one envelope.
    let ops = operations(&doc);
    for prefix in [
        "/v1/",
        "/admin/v1/",
        "/agent/v1/",
        "/webhooks/",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(ops.iter().any(|(_, p)| p.starts_with(prefix)), "nothing under {prefix}");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in ["tenant_key", "admin_token", "node_credential", "stripe_signature"] {
        assert!(schemes.contains_key(name), "no security scheme {name}");
    }
    for (method, path) in &ops {
        let op = &doc["paths"][path][method];
        let public = ["/healthz", "/readyz", "/metrics"].contains(&path.as_str());
        let security = op["security"].as_array().cloned().unwrap_or_default();
        assert_eq!(security.is_empty(), public, "{method} {path}: security {security:?}");
        for requirement in &security {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{method} {path}: unknown scheme {name}");
            }
        }
        for (status, answer) in op["responses"].as_object().unwrap() {
            if status.as_str() >= "400" && !public {
                let schema = resolve(&doc, &answer["content"]["application/json"]["schema"]);
                assert_eq!(
                    schema["required"],
                    json!(["error"]),
                    "{method} {path} {status}: not the error envelope: {schema}"
                );
                assert!(
                    answer["content"]["application/json"].get("example").is_some() || schema.get("example").is_some(),
                    "{method} {path} {status}: no example"
                );
            }
        }
    }

    // Document → router: every operation is routed (an unrouted path would
    // get the fallback's 404, an unrouted method a 405). Without a
    // credential, authenticated routes answer 401 before any lookup.
    let http = reqwest::Client::new();
    for (method, path) in &ops {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{code}", "us-east")
            .replace("{name}", "llama-3-8b")
            .replace("{provider}", "aws");
        let req = http.request(method.to_uppercase().parse().unwrap(), p.server.url(&concrete));
        let status = req.send().await.unwrap().status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} is documented but not routed ({status})"
        );
    }

    // A NUL character (which PostgreSQL cannot store) anywhere a client
    // can put one is a 4xx naming the problem, never a 500.
    let nul_probes = [
        ("GET", "/admin/v1/regions/a%00b", None),
        ("POST", "/admin/v1/models/a%00b/deprecate", None),
        ("GET", "/admin/v1/nodes?model=a%00b", None),
        (
            "POST",
            "/admin/v1/tenants",
            Some(json!({ "name": "n\u{0}", "email": "a@b.test" })),
        ),
        (
            "POST",
            "/admin/v1/tenants",
            Some(json!({ "name": "n", "email": "nul@b.test", "metadata": { "k": "\u{0}" } })),
        ),
    ];
    for (method, path, body) in nul_probes {
        let mut req = http
            .request(method.parse().unwrap(), p.server.url(path))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!((400..500).contains(&status), "{method} {path}: {status} {text}");
        assert!(text.contains("NUL") || text.contains("0x00"), "{method} {path}: {text}");
    }

    // Router → document: every route is registered with `routes!()` from
    // its handler's annotation, which puts it in the document; the only
    // other route is OpenAI's 404 for unknown `/v1` paths.
    // (The web console, `crates/console`, serves HTML pages, not API
    // operations: it is outside the document by design.)
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut undocumented = Vec::new();
    for krate in ["server", "gateway", "control", "billing", "notify", "tenancy", "http"] {
        for file in rust_files(&std::path::Path::new(root).join(krate).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let line = line.replace("OpenApiRouter::new()", "");
                let registers = [
                    ".route(",
                    ".route_service(",
                    ".nest(",
                    ".nest_service(",
                    "Router::new()",
                ]
                .iter()
                .any(|r| line.contains(r));
                if registers && !line.contains(r#".route("/v1/{*rest}""#) {
                    undocumented.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "routes registered outside utoipa_axum::routes!():\n{}",
        undocumented.join("\n")
    );

    // The reference is served from the binary (no CDN).
    let docs = http.get(p.server.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the reference loads something from the network:\n{html}"
    );
    let bundle = http
        .get(p.server.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    p.db.drop_db().await;
}

/// `schema`, or what its `$ref` points at.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// What the fuzzer's configuration names: the credentials, and existing
/// resources to aim the `{id}` routes at (a victim tenant for the admin
/// API, so that deleting it leaves the caller's own tenant working).
struct Targets {
    tenant_key: String,
    own_other_key: String,
    own_channel: String,
    tenant: String,
    environment: String,
    key: String,
    channel: String,
    deployment: String,
    node: String,
}

async fn targets(p: &Platform) -> Targets {
    let http = reqwest::Client::new();
    let call = |method: &str, path: &str, auth: &str, body: Value| {
        let req = http
            .request(method.parse().unwrap(), p.server.url(path))
            .bearer_auth(auth)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let v: Value = resp.json().await.unwrap();
            assert!(status.is_success(), "{status}: {v}");
            v["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    let (tenant_id, env_id, tenant_key, _) = common::tenant_with_key(
        &p.server,
        TOKEN,
        "us-east",
        json!({ "name": "fuzzer", "role": "admin" }),
    )
    .await;
    let own_other_key = call(
        "POST",
        &format!("/admin/v1/tenants/{tenant_id}/keys"),
        TOKEN,
        json!({ "environment_id": env_id, "name": "other" }),
    )
    .await;
    let own_channel = call(
        "POST",
        "/v1/notifications/channels",
        &tenant_key,
        json!({ "channel": "email", "destination": "dev@fuzz.test" }),
    )
    .await;
    let (tenant, environment, _, key) =
        common::tenant_with_key(&p.server, TOKEN, "us-east", json!({ "name": "victim" })).await;
    let channel = call(
        "POST",
        &format!("/admin/v1/tenants/{tenant}/notifications/channels"),
        TOKEN,
        json!({ "channel": "email", "destination": "ops@fuzz.test" }),
    )
    .await;
    let deployment = call(
        "POST",
        "/admin/v1/deployments",
        TOKEN,
        json!({ "name": "fuzz-victim", "model_name": "mistral-7b", "min_replicas": 0, "max_replicas": 1 }),
    )
    .await;
    let node = fixtures::active_node(&p.db.pool, "http://127.0.0.1:9", "mistral-7b", "in-mumbai")
        .await
        .to_string();
    Targets {
        tenant_key,
        own_other_key,
        own_channel,
        tenant,
        environment,
        key,
        channel,
        deployment,
        node,
    }
}

/// Schemathesis's configuration: authentication per security scheme, and
/// the `{id}` of each family of routes.
fn config(t: &Targets) -> String {
    let ids = [
        (r"^/v1/keys/\{id\}", &t.own_other_key),
        (r"^/v1/notifications/channels/\{id\}", &t.own_channel),
        (r"^/admin/v1/tenants/\{id\}", &t.tenant),
        (r"^/admin/v1/environments/\{id\}", &t.environment),
        (r"^/admin/v1/keys/\{id\}", &t.key),
        (r"^/admin/v1/notifications/channels/\{id\}", &t.channel),
        (r"^/admin/v1/deployments/\{id\}", &t.deployment),
        (r"^/admin/v1/nodes/\{id\}", &t.node),
    ];
    let mut out = format!(
        "[auth.openapi.tenant_key]\nbearer = \"{}\"\n\n[auth.openapi.admin_token]\nbearer = \"{TOKEN}\"\n\n",
        t.tenant_key
    );
    let named = [
        (r"^/admin/v1/regions/\{code\}", "code", "in-mumbai"),
        (r"^/admin/v1/models/\{name\}", "name", "mistral-7b"),
    ];
    for (regex, id) in ids {
        out.push_str(&format!(
            "[[operations]]\ninclude-path-regex = '{regex}'\nparameters = {{ id = \"{id}\" }}\n\n"
        ));
    }
    // Inference bodies name the served model (other names only meet 404).
    for (dictionary, model, regex) in [
        ("chat", "llama-3-8b", "^/v1/(chat/completions|completions)$"),
        ("embedding", "bge-large-en", "^/v1/embeddings$"),
    ] {
        out.push_str(&format!(
            "[dictionaries.{dictionary}]\nvalues = [\"{model}\"]\n\n[[operations]]\n\
             include-path-regex = '{regex}'\nparameters = {{ \"body.model\" = {{ dictionary = \"{dictionary}\" }} }}\n\n"
        ));
    }
    for (regex, param, value) in named {
        out.push_str(&format!(
            "[[operations]]\ninclude-path-regex = '{regex}'\nparameters = {{ {param} = \"{value}\" }}\n\n"
        ));
    }
    out
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let p = platform().await;
    let t = targets(&p).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("schemathesis.toml");
    std::fs::write(&cfg, config(&t)).unwrap();
    // The node serves before the fuzzer starts (the gateway's route refresh sees it).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = reqwest::Client::new()
            .post(p.server.url("/v1/chat/completions"))
            .bearer_auth(&t.tenant_key)
            .json(&json!({ "model": "llama-3-8b", "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no completion before fuzzing: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let started = Instant::now();
    let mut child = tokio::process::Command::new(python())
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&cfg)
        .args([
            "run",
            &p.server.url("/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            // The agent API needs a node's own credential; tests/node_agent.rs runs real agents.
            "--exclude-path-regex",
            "^/agent/",
            "--max-examples",
            "20",
            "--seed",
            "20261207",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-shrink",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read = async {
        use tokio::io::AsyncReadExt;
        let (mut o, mut e) = (String::new(), String::new());
        let _ = tokio::join!(stdout.read_to_string(&mut o), stderr.read_to_string(&mut e));
        (o, e)
    };
    let (out, err) = tokio::time::timeout(Duration::from_secs(300), read)
        .await
        .expect("schemathesis did not finish within 300 s");
    let status = child.wait().await.unwrap();
    let summary: Vec<&str> = out.lines().skip_while(|l| !l.contains("SUMMARY")).collect();
    println!(
        "{}\nschemathesis ran {:.0} s",
        summary.join("\n"),
        started.elapsed().as_secs_f64()
    );
    assert!(status.success(), "schemathesis failed ({status}):\n{out}\n{err}");
    assert!(out.contains("passed"), "{out}");
    let tested: usize = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no operation count in:\n{out}"));
    let doc = document(&p.server).await;
    let expected = operations(&doc)
        .iter()
        .filter(|(_, p)| !p.starts_with("/agent/"))
        .count();
    assert_eq!(tested, expected, "{out}");

    // The process kept serving, and the caller's key still works (the
    // stateful phase may have drained the node it found in a listing).
    let ready = reqwest::get(p.server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let models = reqwest::Client::new()
        .get(p.server.url("/v1/models"))
        .bearer_auth(&t.tenant_key)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let models: Value = models.json().await.unwrap();
    assert_eq!(models["object"], "list", "{models}");

    // The inference routes reached the simulator node, and were metered.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let usage: Value = reqwest::Client::new()
            .get(p.server.url("/v1/usage?group_by=model"))
            .bearer_auth(&t.tenant_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let served = usage["data"].as_array().unwrap().iter().any(|r| {
            // More than the one completion made before fuzzing.
            r["group"] == "llama-3-8b" && r["requests"].as_i64().unwrap() - r["failed_requests"].as_i64().unwrap() > 1
        });
        if served {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fuzzer's inference was not served: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.db.drop_db().await;
}
