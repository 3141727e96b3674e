//! `provision_jobs` and `provision_job_lines`: background launch/terminate
//! jobs and their output (the launch logs operators stream).

use chrono::{DateTime, Utc};
use crosslogic_core::{ProvisionJobKind, ProvisionJobStatus};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{DbResult, OrNotFound};

/// A row of `provision_jobs`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProvisionJob {
    pub id: Uuid,
    pub node_id: Option<Uuid>,
    pub cluster_name: String,
    #[sqlx(try_from = "String")]
    pub kind: ProvisionJobKind,
    #[sqlx(try_from = "String")]
    pub status: ProvisionJobStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One line of a job's output; `id` increases in write order (the cursor
/// of a follower).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobLine {
    pub id: i64,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    pub line: String,
}

macro_rules! columns {
    () => {
        "id, node_id, cluster_name, kind, status, error, created_at, updated_at, finished_at"
    };
}

/// Records a job that is starting (status `running`).
pub async fn start(
    db: impl PgExecutor<'_>,
    node_id: Option<Uuid>,
    cluster_name: &str,
    kind: ProvisionJobKind,
) -> DbResult<ProvisionJob> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO provision_jobs (node_id, cluster_name, kind) VALUES ($1, $2, $3) RETURNING ",
        columns!()
    ))
    .bind(node_id)
    .bind(cluster_name)
    .bind(kind.as_str())
    .fetch_one(db)
    .await?)
}

/// Appends lines to a job's output in one statement.
pub async fn append_lines(db: impl PgExecutor<'_>, job_id: Uuid, lines: &[String]) -> DbResult<()> {
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO provision_job_lines (job_id, line)
         SELECT $1, l FROM unnest($2::text[]) WITH ORDINALITY AS t(l, i) ORDER BY i",
    )
    .bind(job_id)
    .bind(lines)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a running job finished: `succeeded` when `error` is `None`.
pub async fn finish(db: impl PgExecutor<'_>, job_id: Uuid, error: Option<&str>) -> DbResult<ProvisionJob> {
    let status = if error.is_some() {
        ProvisionJobStatus::Failed
    } else {
        ProvisionJobStatus::Succeeded
    };
    sqlx::query_as(concat!(
        "UPDATE provision_jobs SET status = $2, error = $3, finished_at = now()
          WHERE id = $1 AND status = 'running' RETURNING ",
        columns!()
    ))
    .bind(job_id)
    .bind(status.as_str())
    .bind(error)
    .fetch_optional(db)
    .await
    .or_not_found("running provision job")
}

/// Jobs still `running` that were started before `before` — left behind by
/// a control plane that stopped mid-job. Marks them failed with `reason`
/// and returns them.
pub async fn fail_abandoned(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    reason: &str,
) -> DbResult<Vec<ProvisionJob>> {
    Ok(sqlx::query_as(concat!(
        "UPDATE provision_jobs SET status = 'failed', error = $2, finished_at = now()
          WHERE status = 'running' AND created_at < $1 RETURNING ",
        columns!()
    ))
    .bind(before)
    .bind(reason)
    .fetch_all(db)
    .await?)
}

/// A node's jobs, oldest first.
pub async fn for_node(db: impl PgExecutor<'_>, node_id: Uuid) -> DbResult<Vec<ProvisionJob>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM provision_jobs WHERE node_id = $1 ORDER BY created_at, id"
    ))
    .bind(node_id)
    .fetch_all(db)
    .await?)
}

/// Output lines of a node's jobs after cursor `after_id` (0 = from the
/// start), in order, at most `limit`.
pub async fn node_lines(db: impl PgExecutor<'_>, node_id: Uuid, after_id: i64, limit: i64) -> DbResult<Vec<JobLine>> {
    Ok(sqlx::query_as(
        "SELECT l.id, l.job_id, l.at, l.line
           FROM provision_job_lines l JOIN provision_jobs j ON j.id = l.job_id
          WHERE j.node_id = $1 AND l.id > $2
          ORDER BY l.id LIMIT $3",
    )
    .bind(node_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Nodes still `launching` that were created before `before` and have no
/// launch job at all: the control plane stopped between writing the row
/// and starting the launch, so nothing will ever come up.
pub async fn launching_without_job(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> DbResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT n.id FROM nodes n
          WHERE n.status = 'launching' AND n.created_at < $1
            AND NOT EXISTS (SELECT 1 FROM provision_jobs j WHERE j.node_id = n.id AND j.kind = 'launch')",
    )
    .bind(before)
    .fetch_all(db)
    .await?)
}
