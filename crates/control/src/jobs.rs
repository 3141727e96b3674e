//! Background provisioning jobs: every launch and terminate runs here, off
//! the reconciler's pass and off any HTTP request, with its progress written
//! line by line to `provision_job_lines` (the launch log an operator
//! streams from `GET /admin/v1/nodes/{id}/logs`).
//!
//! A job owns the node's transitions that follow from its result: a failed
//! launch terminates the node (and tells the reconciler, which backs off
//! and tries the next candidate); a successful terminate marks it
//! terminated. Jobs are tracked so shutdown waits for them (bounded), and
//! one cluster never has two jobs at once in this process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crosslogic_core::events::{NodeLaunchFailed, NodeLaunched};
use crosslogic_core::{Actor, Event, ProvisionJobKind};
use crosslogic_db::repo::provision_jobs;
use crosslogic_db::PgPool;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::fleet::lifecycle::{self, Step};
use crate::provision::{JobLog, LaunchSpec, Provisioner};
use crosslogic_core::ServiceError;

/// Lines are written to the database in batches of at most this many…
const LOG_BATCH: usize = 200;
/// …or after this long, whichever comes first.
const LOG_FLUSH: Duration = Duration::from_millis(250);

/// What became of one launch, for the reconciler's backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchOutcome {
    pub deployment_id: Option<Uuid>,
    pub node_id: Uuid,
    pub cluster_name: String,
    /// The candidate key (`provider/region/gpu:count/spot|od`) launched.
    pub candidate: String,
    /// `None` on success, else why it failed.
    pub error: Option<String>,
}

/// Runs provisioning jobs in the background.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    provisioner: Arc<dyn Provisioner>,
    tracker: TaskTracker,
    /// Clusters with a job running in this process.
    busy: Mutex<HashSet<String>>,
    /// Launch results not yet collected by the reconciler.
    outcomes: Mutex<Vec<LaunchOutcome>>,
    launch_timeout: Duration,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("running", &self.inner.tracker.len())
            .field("launch_timeout", &self.inner.launch_timeout)
            .finish()
    }
}

impl Jobs {
    /// Jobs driving `provisioner`; a launch still running after
    /// `launch_timeout` is abandoned as failed.
    pub fn new(pool: PgPool, provisioner: Arc<dyn Provisioner>, launch_timeout: Duration) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                pool,
                provisioner,
                tracker: TaskTracker::new(),
                busy: Mutex::new(HashSet::new()),
                outcomes: Mutex::new(Vec::new()),
                launch_timeout,
            }),
        }
    }

    /// The provisioner jobs run against.
    pub fn provisioner(&self) -> &Arc<dyn Provisioner> {
        &self.inner.provisioner
    }

    /// Whether a job for `cluster` is running in this process.
    pub fn is_busy(&self, cluster: &str) -> bool {
        lock(&self.inner.busy).contains(cluster)
    }

    /// Waits until no job runs in this process (tests and tools).
    pub async fn idle(&self) {
        while !lock(&self.inner.busy).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Takes the launch results finished since the last call.
    pub fn take_outcomes(&self) -> Vec<LaunchOutcome> {
        std::mem::take(&mut *lock(&self.inner.outcomes))
    }

    /// Starts launching a node whose row (status `launching`) exists.
    /// Returns the job id, or `None` when a job for that cluster already runs.
    pub async fn launch(
        &self,
        spec: LaunchSpec,
        deployment_id: Option<Uuid>,
        candidate: String,
    ) -> Result<Option<Uuid>, ServiceError> {
        let cluster = spec.cluster_name.clone();
        let Some(job) = self
            .claim(Some(spec.node_id), &cluster, ProvisionJobKind::Launch)
            .await?
        else {
            return Ok(None);
        };
        let inner = Arc::clone(&self.inner);
        self.inner.tracker.spawn(async move {
            let node_id = spec.node_id;
            let (spec_provider, spec_region, spec_gpu, spec_spot, spec_model) = (
                spec.provider,
                spec.region.clone(),
                spec.gpu.clone(),
                spec.spot,
                spec.model.clone(),
            );
            let launched = Event::NodeLaunched(NodeLaunched {
                node_id,
                cluster_name: cluster.clone(),
                deployment_id,
                provider: spec.provider,
                region: spec.region.clone(),
                gpu_type: spec.gpu.clone(),
                gpu_count: spec.gpu_count,
                spot: spec.spot,
                model: spec.model.clone(),
                job_id: job,
            });
            let (log, writer) = log_writer(inner.pool.clone(), job);
            log.line(format!("launching {cluster} ({})", describe(&spec)));
            let result =
                match tokio::time::timeout(inner.launch_timeout, inner.provisioner.launch(spec, log.clone())).await {
                    Ok(Ok(handle)) => {
                        log.line(match &handle.endpoint_url {
                            Some(url) => format!("launched; engine at {url}; waiting for the node agent to register"),
                            None => "launched; waiting for the node agent to register".to_owned(),
                        });
                        Ok(())
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("launch did not finish within {:?}", inner.launch_timeout)),
                };
            if let Err(e) = &result {
                log.line(format!("launch failed: {e}; cleaning up"));
                if let Err(down) = inner.provisioner.terminate(&cluster, log.clone()).await {
                    log.line(format!("cleanup failed (the orphan sweep retries): {down}"));
                }
            }
            drop(log);
            let _ = writer.await;
            let error = result.err();
            inner.finish(job, error.as_deref()).await;
            if error.is_none() {
                inner.publish(&launched).await;
            }
            if let Some(e) = &error {
                let failed = NodeLaunchFailed {
                    node_id,
                    cluster_name: cluster.clone(),
                    deployment_id,
                    provider: spec_provider,
                    region: spec_region.clone(),
                    gpu_type: spec_gpu.clone(),
                    spot: spec_spot,
                    model: spec_model.clone(),
                    job_id: job,
                    error: e.clone(),
                };
                if let Err(db) = inner.launch_failed(failed).await {
                    tracing::warn!(cluster = %cluster, error = %db, "could not record the failed launch");
                }
            }
            lock(&inner.outcomes).push(LaunchOutcome {
                deployment_id,
                node_id,
                cluster_name: cluster.clone(),
                candidate,
                error,
            });
            lock(&inner.busy).remove(&cluster);
        });
        Ok(Some(job))
    }

    /// Starts terminating `cluster` (of node `node_id`, when it has a row);
    /// on success the node becomes `terminated` with `why` as the detail,
    /// audited as `actor`'s change when an operator asked for it.
    /// Returns the job id, or `None` when a job for that cluster already runs.
    pub async fn terminate(
        &self,
        node_id: Option<Uuid>,
        cluster: &str,
        why: &str,
        actor: Option<Actor>,
    ) -> Result<Option<Uuid>, ServiceError> {
        let Some(job) = self.claim(node_id, cluster, ProvisionJobKind::Terminate).await? else {
            return Ok(None);
        };
        let inner = Arc::clone(&self.inner);
        let cluster = cluster.to_owned();
        let why = why.to_owned();
        self.inner.tracker.spawn(async move {
            let (log, writer) = log_writer(inner.pool.clone(), job);
            log.line(format!("terminating {cluster} ({why})"));
            let result = inner.provisioner.terminate(&cluster, log.clone()).await;
            match &result {
                Ok(()) => log.line("terminated"),
                Err(e) => log.line(format!("terminate failed (retried by the reconciler): {e}")),
            }
            drop(log);
            let _ = writer.await;
            let error = result.err().map(|e| e.to_string());
            inner.finish(job, error.as_deref()).await;
            if let (None, Some(id)) = (&error, node_id) {
                let detail = format!("terminated ({why})");
                let done = match &actor {
                    Some(a) => lifecycle::transition_by(&inner.pool, a, id, Step::Terminate, &detail).await,
                    None => lifecycle::transition(&inner.pool, id, Step::Terminate, &detail).await,
                };
                if let Err(db) = done {
                    tracing::warn!(cluster = %cluster, error = %db, "could not record the termination");
                }
            }
            lock(&inner.busy).remove(&cluster);
        });
        Ok(Some(job))
    }

    /// Marks the cluster busy and records the job; `None` if already busy.
    async fn claim(
        &self,
        node_id: Option<Uuid>,
        cluster: &str,
        kind: ProvisionJobKind,
    ) -> Result<Option<Uuid>, ServiceError> {
        if !lock(&self.inner.busy).insert(cluster.to_owned()) {
            return Ok(None);
        }
        match provision_jobs::start(&self.inner.pool, node_id, cluster, kind).await {
            Ok(job) => Ok(Some(job.id)),
            Err(e) => {
                lock(&self.inner.busy).remove(cluster);
                Err(e.into())
            }
        }
    }

    /// Stops accepting jobs and waits up to `grace` for running ones. Jobs
    /// still running then are left to the runtime's shutdown; their rows stay
    /// `running` and the next start marks them abandoned.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait()).await.is_err() {
            tracing::warn!(
                running = self.inner.tracker.len(),
                "provisioning jobs still running at shutdown"
            );
        }
    }
}

impl Inner {
    /// Publishes an event the job's result implies (best effort: the job
    /// is done either way; a lost event is logged).
    async fn publish(&self, event: &Event) {
        let published = async {
            let mut conn = self.pool.acquire().await?;
            crosslogic_db::changes::publish(&mut conn, event).await
        };
        if let Err(e) = published.await {
            tracing::warn!(error = %e, event_type = %event.kind(), "could not publish a job's event");
        }
    }

    /// A failed launch: the node is terminated and `node.launch_failed`
    /// says why, in one transaction.
    async fn launch_failed(&self, failed: NodeLaunchFailed) -> Result<(), ServiceError> {
        let detail = format!("launch failed: {}", failed.error);
        let mut tx = crosslogic_db::begin(&self.pool).await?;
        lifecycle::apply(&mut tx, failed.node_id, Step::LaunchFailed, &detail, None).await?;
        crosslogic_db::changes::publish(&mut tx, &Event::NodeLaunchFailed(failed)).await?;
        crosslogic_db::commit(tx).await?;
        Ok(())
    }

    async fn finish(&self, job: Uuid, error: Option<&str>) {
        if let Err(e) = provision_jobs::finish(&self.pool, job, error).await {
            tracing::warn!(%job, error = %e, "could not record the end of a provisioning job");
        }
    }
}

fn describe(spec: &LaunchSpec) -> String {
    let gpu = spec
        .gpu
        .as_deref()
        .map_or_else(|| "no GPU".to_owned(), |g| format!("{}x{g}", spec.gpu_count));
    format!(
        "{} {} {}, {}, model {}",
        spec.provider,
        spec.region.as_deref().unwrap_or("any region"),
        if spec.spot { "spot" } else { "on-demand" },
        gpu,
        spec.model
    )
}

/// A [`JobLog`] whose lines are written to the job's rows in batches by the
/// returned task, which ends once every clone of the log is dropped.
fn log_writer(pool: PgPool, job: Uuid) -> (JobLog, tokio::task::JoinHandle<()>) {
    let (log, mut rx) = JobLog::channel();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            let open = collect(&mut rx, &mut batch).await;
            if !batch.is_empty() {
                if let Err(e) = provision_jobs::append_lines(&pool, job, &batch).await {
                    tracing::warn!(%job, error = %e, lines = batch.len(), "could not write job log lines");
                }
                batch.clear();
            }
            if !open {
                return;
            }
        }
    });
    (log, writer)
}

/// Waits for at least one line, then gathers more for up to [`LOG_FLUSH`].
/// `false` when the channel is closed (after the last lines were gathered).
async fn collect(rx: &mut mpsc::UnboundedReceiver<String>, batch: &mut Vec<String>) -> bool {
    match rx.recv().await {
        Some(line) => batch.push(line),
        None => return false,
    }
    let deadline = tokio::time::Instant::now() + LOG_FLUSH;
    while batch.len() < LOG_BATCH {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => batch.push(line),
            Ok(None) => return false,
            Err(_) => break,
        }
    }
    true
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
