//! `crosslogic models …`: `/admin/v1/models`.

use clap::{Args, Subcommand};
use crosslogic_core::{ModelStatus, ModelType};
use serde_json::{json, Value};

use super::client::{segment, Client};
use super::{compact, details, one_of, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the model catalog, by name.
    List,
    /// Show one model with its prices.
    Get {
        /// Model name, e.g. llama-3-8b.
        name: String,
    },
    /// Create a model, or replace every field of an existing one.
    ///
    /// All fields are sent: a field left out of an existing model is not
    /// kept (--status becomes active, --metadata {}).
    Put {
        /// Model name: letters, digits, '.', '_', '-' and ':' (e.g. llama-3-8b).
        name: String,
        /// Model family, e.g. llama.
        #[arg(long)]
        family: String,
        /// Size label, e.g. 8B.
        #[arg(long)]
        size: String,
        /// What the model serves.
        #[arg(long = "type", value_name = "TYPE", value_parser = one_of(ModelType::ALL, ModelType::as_str))]
        model_type: ModelType,
        /// Context window in tokens.
        #[arg(long, value_name = "TOKENS")]
        context_length: u32,
        /// GPU memory one replica needs, in GB.
        #[arg(long, value_name = "GB")]
        vram_required_gb: u32,
        /// USD per million input tokens (at most 6 decimal places), e.g. 0.05.
        #[arg(long, value_name = "USD")]
        price_input_per_million: String,
        /// USD per million output tokens (at most 6 decimal places).
        #[arg(long, value_name = "USD")]
        price_output_per_million: String,
        /// Tokens per second one replica serves (drives scaling).
        #[arg(long, value_name = "N")]
        tokens_per_second_capacity: u32,
        /// Model status [default: active].
        #[arg(long, value_parser = one_of(ModelStatus::ALL, ModelStatus::as_str))]
        status: Option<ModelStatus>,
        /// Free-form JSON object, e.g. '{"hf_model":"meta-llama/Meta-Llama-3-8B-Instruct"}' [default: {}].
        #[arg(long, value_name = "JSON", value_parser = json_object)]
        metadata: Option<Value>,
    },
    /// Deprecate a model: no new deployments of it; running ones keep serving.
    Deprecate {
        /// Model name.
        name: String,
    },
}

/// Parses a JSON object given on the command line.
pub(super) fn json_object(raw: &str) -> anyhow::Result<Value> {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => anyhow::bail!("expected a JSON object such as '{{\"key\":\"value\"}}'"),
        Err(e) => anyhow::bail!("not JSON: {e}"),
    }
}

pub async fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        ModelsCommand::List => show(json, &api.get("models", &[]).await?, list),
        ModelsCommand::Get { name } => {
            let path = format!("models/{}", segment("model name", &name)?);
            show(json, &api.get(&path, &[]).await?, detail)
        }
        ModelsCommand::Put {
            name,
            family,
            size,
            model_type,
            context_length,
            vram_required_gb,
            price_input_per_million,
            price_output_per_million,
            tokens_per_second_capacity,
            status,
            metadata,
        } => {
            let body = compact(json!({
                "family": family,
                "size": size,
                "type": model_type,
                "context_length": context_length,
                "vram_required_gb": vram_required_gb,
                // Prices as text, so the server reads exactly the digits given.
                "price_input_per_million": price_input_per_million,
                "price_output_per_million": price_output_per_million,
                "tokens_per_second_capacity": tokens_per_second_capacity,
                "status": status,
                "metadata": metadata,
            }));
            let path = format!("models/{}", segment("model name", &name)?);
            show(json, &api.put(&path, body).await?, detail)
        }
        ModelsCommand::Deprecate { name } => {
            let path = format!("models/{}/deprecate", segment("model name", &name)?);
            let m = api.post(&path, json!({})).await?;
            show(json, &m, |m| {
                output::line(&format!("model {} is {}", text(m, "name", "?"), text(m, "status", "?")));
            })
        }
    }
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|m| {
            vec![
                text(m, "name", "-"),
                text(m, "type", "-"),
                text(m, "family", "-"),
                text(m, "size", "-"),
                text(m, "context_length", "-"),
                text(m, "vram_required_gb", "-"),
                text(m, "price_input_per_million", "-"),
                text(m, "price_output_per_million", "-"),
                text(m, "tokens_per_second_capacity", "-"),
                text(m, "status", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no models");
        return;
    }
    output::table(
        &[
            "name",
            "type",
            "family",
            "size",
            "context",
            "vram_gb",
            "in_usd/M",
            "out_usd/M",
            "tok/s",
            "status",
        ],
        &rows,
    );
}

fn detail(m: &Value) {
    details(&[
        ("name", text(m, "name", "-")),
        ("type", text(m, "type", "-")),
        ("family", text(m, "family", "-")),
        ("size", text(m, "size", "-")),
        ("status", text(m, "status", "-")),
        ("context length", text(m, "context_length", "-")),
        ("vram required (GB)", text(m, "vram_required_gb", "-")),
        ("input USD/M tokens", text(m, "price_input_per_million", "-")),
        ("output USD/M tokens", text(m, "price_output_per_million", "-")),
        ("tokens/s capacity", text(m, "tokens_per_second_capacity", "-")),
        ("metadata", metadata(m)),
        ("created", when(m, "created_at", "-")),
        ("updated", when(m, "updated_at", "-")),
    ]);
}

/// The metadata object as compact JSON (`-` when empty).
fn metadata(m: &Value) -> String {
    match &m["metadata"] {
        Value::Object(map) if !map.is_empty() => m["metadata"].to_string(),
        _ => "-".to_owned(),
    }
}
