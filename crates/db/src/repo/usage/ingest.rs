//! Writing usage rows in batches: the hot path of metering.
//!
//! A batch goes in with `COPY … FROM STDIN` (text format): PostgreSQL
//! parses the rows straight into the table, with no per-row planning, no
//! join and no conflict arbitration. That is only right when every row is
//! new and every reference still exists — true for nearly every batch a
//! gateway writes. When COPY is refused for either reason (a replayed batch
//! that partly reached the database, or a key, node or environment deleted
//! while its request was in flight), nothing of it was written and the same
//! rows go through [`insert_checked`], which skips known request ids and
//! nulls vanished references. Both are one statement, so the statement
//! trigger that queues the rollup hours fires once per batch either way.
//!
//! Why text format by hand: sqlx sends COPY data as raw bytes and has no
//! row encoder; the text format's rules (tab-separated, `\N` for NULL,
//! backslash escapes) are a few lines, and PostgreSQL parses every value
//! with the same input functions as a literal.

use std::fmt::Write as _;

use crosslogic_core::Femtos;
use sqlx::{PgExecutor, PgPool};

use super::UsageRecord;
use crate::error::{DbError, DbResult};
use crate::money::to_numeric;

impl UsageRecord {
    /// The exact cost, or the rounded one for records that predate it.
    fn exact(&self) -> Femtos {
        if self.cost_exact == Femtos::ZERO && self.cost_microdollars != 0 {
            Femtos::from_micros(crosslogic_core::Micros(self.cost_microdollars))
        } else {
            self.cost_exact
        }
    }
}

const COPY: &str =
    "COPY usage_records (request_id, timestamp, tenant_id, environment_id, api_key_id, region_id, model_id,
                                model_name, node_id, prompt_tokens, completion_tokens, total_tokens, cached_tokens,
                                latency_ms, cost_microdollars, status, metadata, cost_exact_microdollars)
     FROM STDIN";

/// Inserts a batch; rows whose `request_id` already exists are skipped, so
/// replaying a batch after a failure never duplicates, and references that
/// no longer exist are written as NULL. Returns how many rows were new.
pub async fn insert_batch(pool: &PgPool, records: &[UsageRecord]) -> DbResult<u64> {
    if records.is_empty() {
        return Ok(0);
    }
    match copy(pool, records).await {
        Ok(n) => Ok(n),
        // A duplicate request id or a vanished reference: nothing was
        // written; the careful path sorts the rows out.
        Err(DbError::Conflict { .. } | DbError::ForeignKey { .. }) => insert_checked(pool, records).await,
        Err(e) => Err(e),
    }
}

async fn copy(pool: &PgPool, records: &[UsageRecord]) -> DbResult<u64> {
    let data = copy_text(records);
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_in_raw(COPY).await?;
    if let Err(e) = copy.send(data.into_bytes()).await {
        // The server already refused (or the connection broke): end the
        // COPY so the connection is usable again, and report the first error.
        let _ = copy.abort("sending failed").await;
        return Err(e.into());
    }
    Ok(copy.finish().await?)
}

/// Appends `s` escaped for COPY's text format.
fn text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

fn opt(out: &mut String, v: Option<uuid::Uuid>) {
    match v {
        Some(id) => {
            let _ = write!(out, "{}", id.hyphenated());
        }
        None => out.push_str("\\N"),
    }
}

/// The batch as COPY text rows, in [`COPY`]'s column order.
fn copy_text(records: &[UsageRecord]) -> String {
    let mut out = String::with_capacity(records.len() * 320);
    for r in records {
        text(&mut out, &r.request_id);
        out.push('\t');
        let _ = write!(
            out,
            "{}\t{}\t",
            r.timestamp.format("%Y-%m-%d %H:%M:%S%.6f+00"),
            r.tenant_id.hyphenated()
        );
        for id in [r.environment_id, r.api_key_id, r.region_id, r.model_id] {
            opt(&mut out, id);
            out.push('\t');
        }
        text(&mut out, &r.model_name);
        out.push('\t');
        opt(&mut out, r.node_id);
        let _ = write!(
            out,
            "\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
            r.prompt_tokens,
            r.completion_tokens,
            r.prompt_tokens.saturating_add(r.completion_tokens),
            r.cached_tokens,
            r.latency_ms,
            r.cost_microdollars,
            r.status.as_str()
        );
        text(&mut out, &r.metadata.to_string());
        let _ = writeln!(out, "\t{}", to_numeric(r.exact()));
    }
    out
}

/// The careful path: one `INSERT … SELECT FROM unnest(…)` that skips
/// request ids already present and writes references that vanished since
/// the request was served as NULL (as their deletion would have done).
async fn insert_checked(db: impl PgExecutor<'_>, records: &[UsageRecord]) -> DbResult<u64> {
    macro_rules! col {
        ($f:ident) => {
            records.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    let total: Vec<i32> = records
        .iter()
        .map(|r| r.prompt_tokens.saturating_add(r.completion_tokens))
        .collect();
    let status: Vec<&str> = records.iter().map(|r| r.status.as_str()).collect();
    let exact: Vec<rust_decimal::Decimal> = records.iter().map(|r| to_numeric(r.exact())).collect();
    // References that vanished since the request was served (an
    // environment or key deleted meanwhile, a node gone) are written as
    // NULL, as their deletion would have done, so one such record never
    // fails the whole batch.
    let done = sqlx::query(
        "INSERT INTO usage_records (request_id, timestamp, tenant_id, environment_id, api_key_id, region_id, model_id,
                                    model_name, node_id, prompt_tokens, completion_tokens, total_tokens, cached_tokens,
                                    latency_ms, cost_microdollars, status, metadata, cost_exact_microdollars)
         SELECT u.request_id, u.ts, u.tenant_id, e.id, k.id, r.id, m.id, u.model_name, n.id, u.prompt, u.completion,
                u.total, u.cached, u.latency, u.cost, u.status, u.metadata, u.exact
           FROM unnest($1::text[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::uuid[],
                       $8::text[], $9::uuid[], $10::int[], $11::int[], $12::int[], $13::int[], $14::int[],
                       $15::bigint[], $16::text[], $17::jsonb[], $18::numeric[])
                AS u(request_id, ts, tenant_id, environment_id, api_key_id, region_id, model_id, model_name, node_id,
                     prompt, completion, total, cached, latency, cost, status, metadata, exact)
           LEFT JOIN environments e ON e.id = u.environment_id
           LEFT JOIN api_keys k ON k.id = u.api_key_id
           LEFT JOIN regions r ON r.id = u.region_id
           LEFT JOIN models m ON m.id = u.model_id
           LEFT JOIN nodes n ON n.id = u.node_id
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(col!(request_id))
    .bind(col!(timestamp))
    .bind(col!(tenant_id))
    .bind(col!(environment_id))
    .bind(col!(api_key_id))
    .bind(col!(region_id))
    .bind(col!(model_id))
    .bind(col!(model_name))
    .bind(col!(node_id))
    .bind(col!(prompt_tokens))
    .bind(col!(completion_tokens))
    .bind(total)
    .bind(col!(cached_tokens))
    .bind(col!(latency_ms))
    .bind(col!(cost_microdollars))
    .bind(status)
    .bind(col!(metadata))
    .bind(exact)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
