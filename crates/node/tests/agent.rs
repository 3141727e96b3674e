#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The node agent against the real vLLM simulator (as the engine) and a small
//! recording stub of the control plane's agent API; cloud metadata services
//! are stubs too. The real control plane is tested end to end elsewhere.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use crosslogic_node::agent::{run, AgentConfig, AgentError, AgentExit, Cloud, PreemptionConfig};
use crosslogic_node::sim::{self, SimConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Upper bound of every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(20);
const NODE_TOKEN: &str = "node-credential-1";
const ADVERTISE: &str = "http://10.1.2.3:8000";

/// Polls `cond` every 20 ms until it holds; panics after [`PATIENCE`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `router` on 127.0.0.1:0 until the returned token fires.
async fn serve_router(router: Router) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let until = stop.clone().cancelled_owned();
    tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(until).await });
    (url, stop)
}

/// The real simulator on 127.0.0.1:0.
async fn start_sim(cfg: SimConfig) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(sim::serve(listener, cfg, stop.clone()));
    (url, stop)
}

/// The simulator behind a gate: `/health` answers 503 (and is counted) until
/// the gate opens, as while vLLM loads the model.
struct Gate {
    open: AtomicBool,
    closed_probes: AtomicUsize,
}

async fn gate(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" && !gate.open.load(Ordering::SeqCst) {
        gate.closed_probes.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    next.run(req).await
}

async fn start_gated_sim() -> (String, Arc<Gate>, CancellationToken) {
    let state = Arc::new(Gate {
        open: AtomicBool::new(false),
        closed_probes: AtomicUsize::new(0),
    });
    let router = sim::router(SimConfig::default()).layer(middleware::from_fn_with_state(Arc::clone(&state), gate));
    let (url, stop) = serve_router(router).await;
    (url, state, stop)
}

/// One request the control-plane stub received.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    auth: Option<String>,
    body: Value,
}

/// What the control-plane stub answers.
#[derive(Debug)]
struct Behaviour {
    /// Answers to the next registrations, before the normal 200.
    register_errors: VecDeque<(StatusCode, String)>,
    /// The credential returned at registration.
    node_token: Option<String>,
    /// The node id given to nodes that register without one.
    assigned_id: Uuid,
    /// Non-200 answer to heartbeats.
    heartbeat_error: Option<StatusCode>,
    drain: bool,
}

#[derive(Clone)]
struct ControlStub {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

fn envelope(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "authentication_error", "param": null, "code": null}});
    (status, Json(body)).into_response()
}

async fn control_handler(State(stub): State<ControlStub>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
    let path = uri.path().to_owned();
    stub.calls.lock().unwrap().push(Call {
        path: path.clone(),
        auth,
        body: body.clone(),
    });
    let mut b = stub.behaviour.lock().unwrap();
    if path == "/agent/v1/register" {
        if let Some((status, message)) = b.register_errors.pop_front() {
            return envelope(status, &message);
        }
        let node_id = body.get("node_id").cloned().unwrap_or(json!(b.assigned_id));
        return Json(json!({"node_id": node_id, "node_token": b.node_token, "heartbeat_interval_secs": 1}))
            .into_response();
    }
    if path.ends_with("/heartbeat") {
        if let Some(status) = b.heartbeat_error {
            return envelope(status, "node not found");
        }
        let status = if b.drain { "draining" } else { "active" };
        return Json(json!({"status": status, "drain": b.drain})).into_response();
    }
    Json(json!({})).into_response()
}

impl ControlStub {
    async fn start() -> ControlStub {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour {
            register_errors: VecDeque::new(),
            node_token: None,
            assigned_id: Uuid::new_v4(),
            heartbeat_error: None,
            drain: false,
        }));
        // The handler's state is the stub itself, whose URL is known once
        // bound. The server lives as long as the test's runtime.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stub = ControlStub { url, calls, behaviour };
        let router = Router::new().fallback(control_handler).with_state(stub.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        stub
    }

    fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }

    /// The calls whose path ends with `suffix`, in order.
    fn calls(&self, suffix: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|c| c.path.ends_with(suffix)).cloned().collect()
    }

    fn count(&self, suffix: &str) -> usize {
        self.calls(suffix).len()
    }
}

/// A launched node's configuration: node id and per-node credential.
fn launched(control: &ControlStub, engine: &str, node_id: Uuid) -> AgentConfig {
    let mut cfg = AgentConfig::new(&control.url, NODE_TOKEN, engine, ADVERTISE);
    cfg.node_id = Some(node_id);
    cfg.internal_ip = Some("10.1.2.3".into());
    cfg.external_id = Some("i-0abc123".into());
    cfg.engine_start_timeout = PATIENCE;
    cfg
}

struct Agent {
    shutdown: CancellationToken,
    task: JoinHandle<Result<AgentExit, AgentError>>,
}

impl Agent {
    fn start(cfg: AgentConfig) -> Agent {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(cfg, shutdown.clone()));
        Agent { shutdown, task }
    }

    /// Waits (bounded) for the agent to end by itself.
    async fn join(self) -> Result<AgentExit, AgentError> {
        bounded(self.task).await.unwrap()
    }

    /// Fires shutdown and waits (bounded) for the agent to end.
    async fn stop(self) -> Result<AgentExit, AgentError> {
        self.shutdown.cancel();
        self.join().await
    }
}

async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .expect("bounded wait timed out")
}

#[tokio::test]
async fn waits_for_engine_health_then_registers_with_the_advertised_endpoint_and_node_credential() {
    let (engine, gate, _engine_stop) = start_gated_sim().await;
    let control = ControlStub::start().await;
    let node_id = Uuid::new_v4();
    let agent = Agent::start(launched(&control, &engine, node_id));

    wait_until("health probes while the engine loads", || {
        gate.closed_probes.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(
        control.count("/register"),
        0,
        "registered before the engine was healthy"
    );

    gate.open.store(true, Ordering::SeqCst);
    wait_until("a heartbeat", || control.count("/heartbeat") >= 1).await;

    let register = control.calls("/register");
    assert_eq!(register.len(), 1);
    assert_eq!(register[0].path, "/agent/v1/register");
    assert_eq!(register[0].auth.as_deref(), Some("Bearer node-credential-1"));
    assert_eq!(
        register[0].body,
        json!({"node_id": node_id, "endpoint_url": ADVERTISE, "internal_ip": "10.1.2.3", "external_id": "i-0abc123"})
    );
    let beat = &control.calls("/heartbeat")[0];
    assert_eq!(beat.path, format!("/agent/v1/nodes/{node_id}/heartbeat"));
    assert_eq!(beat.auth.as_deref(), Some("Bearer node-credential-1"));
    assert_eq!(beat.body["engine_healthy"], json!(true));

    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
}

#[tokio::test]
async fn registration_token_flow_switches_to_the_returned_node_token() {
    let (engine, _engine_stop) = start_sim(SimConfig {
        served_model_name: "lab-llama".into(),
        ..SimConfig::default()
    })
    .await;
    let control = ControlStub::start().await;
    control.set(|b| b.node_token = Some("issued-node-token".into()));
    let assigned = control.behaviour.lock().unwrap().assigned_id;

    let mut cfg = AgentConfig::new(&control.url, "operator-registration-token", &engine, ADVERTISE);
    cfg.region = Some("onprem-lab".into());
    cfg.gpu_type = Some("RTX4090".into());
    cfg.gpu_count = Some(2);
    cfg.internal_ip = Some("192.168.1.20".into());
    let agent = Agent::start(cfg);

    wait_until("two heartbeats", || control.count("/heartbeat") >= 2).await;
    let register = control.calls("/register");
    assert_eq!(register.len(), 1);
    assert_eq!(register[0].auth.as_deref(), Some("Bearer operator-registration-token"));
    assert_eq!(
        register[0].body,
        json!({"endpoint_url": ADVERTISE, "internal_ip": "192.168.1.20", "external_id": null,
               "model": "lab-llama", "region": "onprem-lab", "gpu_type": "RTX4090", "gpu_count": 2})
    );
    for beat in control.calls("/heartbeat") {
        assert_eq!(beat.path, format!("/agent/v1/nodes/{assigned}/heartbeat"));
        assert_eq!(beat.auth.as_deref(), Some("Bearer issued-node-token"));
    }

    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
    let deregister = control.calls("/deregister");
    assert_eq!(deregister.len(), 1);
    assert_eq!(deregister[0].auth.as_deref(), Some("Bearer issued-node-token"));
}

#[tokio::test]
async fn heartbeats_carry_the_load_read_from_the_engine_metrics() {
    // 400 tokens at 50 ms each: a stream that runs for about 20 s.
    let (engine, _engine_stop) = start_sim(SimConfig {
        itl: Duration::from_millis(50),
        output_tokens: 400,
        ..SimConfig::default()
    })
    .await;
    let url = format!("{engine}/v1/completions");
    let stream = tokio::spawn(async move {
        let body = json!({"model": "sim-model", "prompt": "tell me a long story", "max_tokens": 400, "stream": true});
        let mut resp = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
        while let Ok(Some(_chunk)) = resp.chunk().await {}
    });

    let control = ControlStub::start().await;
    let agent = Agent::start(launched(&control, &engine, Uuid::new_v4()));
    wait_until("a heartbeat showing the running stream", || {
        control.calls("/heartbeat").iter().any(|c| {
            c.body["running"].as_u64() >= Some(1)
                && c.body["tokens_per_second"].as_f64() > Some(0.0)
                && c.body["kv_cache_usage"].as_f64() > Some(0.0)
        })
    })
    .await;
    for beat in control.calls("/heartbeat") {
        assert_eq!(beat.body["waiting"], json!(0));
        assert_eq!(beat.body["engine_healthy"], json!(true));
        let kv = beat.body["kv_cache_usage"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&kv), "kv_cache_usage {kv}");
    }

    stream.abort();
    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
}

#[tokio::test]
async fn transient_503_on_register_is_retried() {
    let (engine, _engine_stop) = start_sim(SimConfig::default()).await;
    let control = ControlStub::start().await;
    control.set(|b| {
        b.register_errors
            .push_back((StatusCode::SERVICE_UNAVAILABLE, "database unavailable".into()));
        b.register_errors
            .push_back((StatusCode::BAD_GATEWAY, "restarting".into()));
    });
    let agent = Agent::start(launched(&control, &engine, Uuid::new_v4()));

    wait_until("a heartbeat after the retries", || control.count("/heartbeat") >= 1).await;
    assert_eq!(control.count("/register"), 3);
    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
}

#[tokio::test]
async fn registration_refused_with_401_fails_with_the_servers_message() {
    let (engine, _engine_stop) = start_sim(SimConfig::default()).await;
    let control = ControlStub::start().await;
    control.set(|b| {
        b.register_errors
            .push_back((StatusCode::UNAUTHORIZED, "invalid registration token".into()));
    });
    let agent = Agent::start(launched(&control, &engine, Uuid::new_v4()));

    match agent.join().await {
        Err(AgentError::Rejected { status, message }) => {
            assert_eq!(status, 401);
            assert_eq!(message, "invalid registration token");
        }
        other => panic!("expected a rejected registration, got {other:?}"),
    }
    assert_eq!(control.count("/register"), 1, "a refusal must not be retried");
    assert_eq!(control.count("/heartbeat"), 0);
}

#[tokio::test]
async fn heartbeat_answered_404_ends_the_agent_as_removed() {
    let (engine, _engine_stop) = start_sim(SimConfig::default()).await;
    let control = ControlStub::start().await;
    control.set(|b| b.heartbeat_error = Some(StatusCode::NOT_FOUND));
    let agent = Agent::start(launched(&control, &engine, Uuid::new_v4()));

    assert_eq!(agent.join().await.unwrap(), AgentExit::Removed);
    assert_eq!(control.count("/heartbeat"), 1);
    assert_eq!(
        control.count("/deregister"),
        0,
        "a removed node has nothing to deregister"
    );
}

#[tokio::test]
async fn transient_heartbeat_failures_and_drain_keep_the_agent_heartbeating() {
    let (engine, _engine_stop) = start_sim(SimConfig::default()).await;
    let control = ControlStub::start().await;
    control.set(|b| b.heartbeat_error = Some(StatusCode::INTERNAL_SERVER_ERROR));
    let agent = Agent::start(launched(&control, &engine, Uuid::new_v4()));

    wait_until("heartbeats despite 500s", || control.count("/heartbeat") >= 2).await;
    control.set(|b| {
        b.heartbeat_error = None;
        b.drain = true;
    });
    let seen = control.count("/heartbeat");
    wait_until("heartbeats while draining", || control.count("/heartbeat") >= seen + 2).await;
    assert!(!agent.task.is_finished(), "a draining node keeps heartbeating");

    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
    assert_eq!(control.count("/deregister"), 1);
}

#[tokio::test]
async fn shutdown_sends_deregister() {
    let (engine, _engine_stop) = start_sim(SimConfig::default()).await;
    let control = ControlStub::start().await;
    let node_id = Uuid::new_v4();
    let agent = Agent::start(launched(&control, &engine, node_id));
    wait_until("a heartbeat", || control.count("/heartbeat") >= 1).await;

    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
    let deregister = control.calls("/deregister");
    assert_eq!(deregister.len(), 1);
    assert_eq!(deregister[0].path, format!("/agent/v1/nodes/{node_id}/deregister"));
    assert_eq!(deregister[0].auth.as_deref(), Some("Bearer node-credential-1"));
    assert_eq!(deregister[0].body, json!({}));
}

#[tokio::test]
async fn shutdown_while_the_engine_loads_stops_without_registering() {
    let (engine, gate, _engine_stop) = start_gated_sim().await;
    let control = ControlStub::start().await;
    let agent = Agent::start(launched(&control, &engine, Uuid::new_v4()));
    wait_until("a health probe", || gate.closed_probes.load(Ordering::SeqCst) >= 1).await;

    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
    assert!(control.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_engine_that_never_becomes_healthy_fails_after_the_start_timeout() {
    let (engine, _gate, _engine_stop) = start_gated_sim().await;
    let control = ControlStub::start().await;
    let mut cfg = launched(&control, &engine, Uuid::new_v4());
    cfg.engine_start_timeout = Duration::from_secs(1);

    match Agent::start(cfg).join().await {
        Err(AgentError::EngineNotReady { url, .. }) => assert_eq!(url, engine),
        other => panic!("expected EngineNotReady, got {other:?}"),
    }
    assert!(control.calls.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Spot preemption: stub metadata services that announce a notice at the third
// poll.

/// One request a metadata stub received.
#[derive(Debug, Clone)]
struct MetaCall {
    method: Method,
    uri: String,
    headers: HeaderMap,
}

#[derive(Clone)]
struct MetaStub {
    cloud: Cloud,
    calls: Arc<Mutex<Vec<MetaCall>>>,
    polls: Arc<AtomicUsize>,
}

const AWS_SESSION_TOKEN: &str = "imds-session-token";
const AWS_NOTICE: &str = r#"{"action": "terminate", "time": "2030-01-01T00:00:00Z"}"#;

fn azure_doc(event_type: Option<&str>) -> Value {
    let events: Vec<Value> = event_type
        .into_iter()
        .map(|t| json!({"EventId": "e1", "EventType": t, "ResourceType": "VirtualMachine", "Resources": ["vm1"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT"}))
        .collect();
    json!({"DocumentIncarnation": 1, "Events": events})
}

async fn metadata_handler(State(stub): State<MetaStub>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    stub.calls.lock().unwrap().push(MetaCall {
        method: method.clone(),
        uri: uri.to_string(),
        headers: headers.clone(),
    });
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match (stub.cloud, method, uri.path()) {
        (Cloud::Aws, Method::PUT, "/latest/api/token") => {
            if header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                return StatusCode::BAD_REQUEST.into_response();
            }
            AWS_SESSION_TOKEN.into_response()
        }
        (Cloud::Aws, Method::GET, "/latest/meta-data/spot/instance-action") => {
            if header("x-aws-ec2-metadata-token").as_deref() != Some(AWS_SESSION_TOKEN) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            match stub.polls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => StatusCode::NOT_FOUND.into_response(),
                _ => AWS_NOTICE.into_response(),
            }
        }
        (Cloud::Gcp, Method::GET, "/computeMetadata/v1/instance/preempted") => {
            if header("metadata-flavor").as_deref() != Some("Google") {
                return StatusCode::FORBIDDEN.into_response();
            }
            match stub.polls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => "FALSE".into_response(),
                _ => "TRUE".into_response(),
            }
        }
        (Cloud::Azure, Method::GET, "/metadata/scheduledevents") => {
            if header("metadata").as_deref() != Some("true") || uri.query() != Some("api-version=2020-07-01") {
                return StatusCode::BAD_REQUEST.into_response();
            }
            match stub.polls.fetch_add(1, Ordering::SeqCst) {
                0 => Json(azure_doc(None)).into_response(),
                1 => Json(azure_doc(Some("Freeze"))).into_response(),
                _ => Json(azure_doc(Some("Preempt"))).into_response(),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_metadata(cloud: Cloud) -> (MetaStub, String, CancellationToken) {
    let stub = MetaStub {
        cloud,
        calls: Arc::new(Mutex::new(Vec::new())),
        polls: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new().fallback(metadata_handler).with_state(stub.clone());
    let (url, stop) = serve_router(router).await;
    (stub, url, stop)
}

/// Runs an agent watching `cloud`'s stub metadata service until the notice
/// has been reported and two more heartbeats went out; checks exactly one
/// preemption call was made. Returns the stub and the reported notice.
async fn preemption_is_reported_once(cloud: Cloud) -> (MetaStub, String) {
    let (engine, _engine_stop) = start_sim(SimConfig::default()).await;
    let control = ControlStub::start().await;
    let (meta, meta_url, _meta_stop) = start_metadata(cloud).await;
    let node_id = Uuid::new_v4();
    let mut cfg = launched(&control, &engine, node_id);
    cfg.preemption = Some(PreemptionConfig {
        cloud,
        metadata_url: meta_url,
        poll_interval: Duration::from_millis(50),
    });
    let agent = Agent::start(cfg);

    wait_until("the preemption report", || control.count("/preemption") >= 1).await;
    let seen = control.count("/heartbeat");
    wait_until("heartbeats after the notice", || {
        control.count("/heartbeat") >= seen + 2
    })
    .await;

    let reports = control.calls("/preemption");
    assert_eq!(reports.len(), 1, "exactly one preemption report");
    assert_eq!(reports[0].path, format!("/agent/v1/nodes/{node_id}/preemption"));
    assert_eq!(reports[0].auth.as_deref(), Some("Bearer node-credential-1"));
    assert_eq!(reports[0].body["provider"], json!(cloud.as_str()));
    assert_eq!(meta.polls.load(Ordering::SeqCst), 3, "polling stops after the notice");
    assert_eq!(agent.stop().await.unwrap(), AgentExit::Stopped);
    let notice = reports[0].body["notice"].as_str().unwrap().to_owned();
    (meta, notice)
}

#[tokio::test]
async fn aws_spot_interruption_is_reported_once_using_an_imdsv2_token() {
    let (meta, notice) = preemption_is_reported_once(Cloud::Aws).await;
    assert_eq!(
        serde_json::from_str::<Value>(&notice).unwrap()["action"],
        json!("terminate")
    );

    let calls = meta.calls.lock().unwrap().clone();
    let puts: Vec<_> = calls.iter().filter(|c| c.method == Method::PUT).collect();
    assert_eq!(puts.len(), 1, "the IMDSv2 token is reused while valid");
    assert_eq!(puts[0].uri, "/latest/api/token");
    assert_eq!(puts[0].headers["x-aws-ec2-metadata-token-ttl-seconds"], "21600");
    let gets: Vec<_> = calls.iter().filter(|c| c.method == Method::GET).collect();
    assert_eq!(gets.len(), 3);
    for get in gets {
        assert_eq!(get.uri, "/latest/meta-data/spot/instance-action");
        assert_eq!(get.headers["x-aws-ec2-metadata-token"], AWS_SESSION_TOKEN);
    }
}

#[tokio::test]
async fn gcp_preemption_is_reported_once() {
    let (meta, notice) = preemption_is_reported_once(Cloud::Gcp).await;
    assert_eq!(notice.trim(), "TRUE");
    for call in meta.calls.lock().unwrap().iter() {
        assert_eq!(call.headers["metadata-flavor"], "Google");
    }
}

#[tokio::test]
async fn azure_preempt_event_is_reported_once() {
    let (meta, notice) = preemption_is_reported_once(Cloud::Azure).await;
    let doc: Value = serde_json::from_str(&notice).unwrap();
    assert_eq!(doc["Events"][0]["EventType"], json!("Preempt"));
    for call in meta.calls.lock().unwrap().iter() {
        assert_eq!(call.uri, "/metadata/scheduledevents?api-version=2020-07-01");
        assert_eq!(call.headers["metadata"], "true");
    }
}
