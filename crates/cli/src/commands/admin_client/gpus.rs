//! `crosslogic gpus …`: `/admin/v1/gpus`, the GPU catalog (types and their
//! hourly prices per provider).

use clap::{Args, Subcommand};
use crosslogic_core::Provider;
use serde_json::{json, Value};

use super::client::{segment, Client};
use super::{compact, details, one_of, rows, show, text, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct GpusArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: GpusCommand,
}

#[derive(Debug, Subcommand)]
pub enum GpusCommand {
    /// List every GPU type × provider offer, cheapest on-demand first.
    List,
    /// Create or replace a GPU type's offer at one provider (and the type's VRAM).
    ///
    /// All fields are sent: leaving out --spot-usd-per-hour removes the spot
    /// offer, and the offer is available unless --unavailable is given.
    Put {
        /// GPU type: letters, digits, '.', '_', '-' and ':' (e.g. A100-80GB).
        name: String,
        /// Provider of the offer.
        #[arg(value_parser = one_of(Provider::ALL, Provider::as_str))]
        provider: Provider,
        /// Memory of one GPU of this type, in GB (shared by every provider's offer).
        #[arg(long, value_name = "GB")]
        vram_gb: u32,
        /// USD per GPU-hour on demand (at most 4 decimal places), e.g. 1.20.
        #[arg(long, value_name = "USD")]
        on_demand_usd_per_hour: String,
        /// USD per GPU-hour on spot (at most 4 decimal places); omit for no spot offer.
        #[arg(long, value_name = "USD")]
        spot_usd_per_hour: Option<String>,
        /// Mark the offer unavailable (placement skips it).
        #[arg(long)]
        unavailable: bool,
    },
}

pub async fn run(args: GpusArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        GpusCommand::List => show(json, &api.get("gpus", &[]).await?, list),
        GpusCommand::Put {
            name,
            provider,
            vram_gb,
            on_demand_usd_per_hour,
            spot_usd_per_hour,
            unavailable,
        } => {
            // Prices as text, so the server reads exactly the digits given.
            let body = compact(json!({
                "vram_gb": vram_gb,
                "on_demand_usd_per_hour": on_demand_usd_per_hour,
                "spot_usd_per_hour": spot_usd_per_hour,
                "available": !unavailable,
            }));
            let path = format!(
                "gpus/{}/{}",
                segment("GPU type", &name)?,
                segment("provider", provider.as_str())?
            );
            show(json, &api.put(&path, body).await?, detail)
        }
    }
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|g| {
            vec![
                text(g, "gpu_type", "-"),
                text(g, "provider", "-"),
                text(g, "vram_gb", "-"),
                text(g, "on_demand_usd_per_hour", "-"),
                text(g, "spot_usd_per_hour", "-"),
                text(g, "available", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no GPU offers");
        return;
    }
    output::table(
        &[
            "gpu",
            "provider",
            "vram_gb",
            "on_demand_usd/h",
            "spot_usd/h",
            "available",
        ],
        &rows,
    );
}

fn detail(g: &Value) {
    details(&[
        ("gpu", text(g, "gpu_type", "-")),
        ("provider", text(g, "provider", "-")),
        ("vram (GB)", text(g, "vram_gb", "-")),
        ("on-demand USD/h", text(g, "on_demand_usd_per_hour", "-")),
        ("spot USD/h", text(g, "spot_usd_per_hour", "no spot offer")),
        ("available", text(g, "available", "-")),
    ]);
}
