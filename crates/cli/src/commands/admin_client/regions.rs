//! `crosslogic regions …`: `/admin/v1/regions`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use crosslogic_core::{Provider, RegionStatus};
use serde_json::{json, Value};

use super::client::{segment, Client};
use super::{compact, details, one_of, rows, show, text, when, ClientOpts};
use crate::output;

#[derive(Debug, Args)]
pub struct RegionsArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: RegionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RegionsCommand {
    /// List the regions the platform serves, by code.
    List,
    /// Show one region.
    Get {
        /// Region code, e.g. us-east.
        code: String,
    },
    /// Create a region, or replace every field of an existing one.
    ///
    /// All fields are sent: a field left out of an existing region is not
    /// kept (--provider-regions becomes empty, --status active).
    Put {
        /// Region code: 1 to 63 of a-z, 0-9 and '-' (e.g. us-east).
        code: String,
        /// Display name, e.g. "US East (Virginia)".
        #[arg(long)]
        name: String,
        /// Country, e.g. USA.
        #[arg(long)]
        country: String,
        /// City, e.g. Ashburn.
        #[arg(long)]
        city: String,
        /// Providers that serve the region, comma-separated (at least one).
        #[arg(
            long,
            value_name = "P,Q",
            value_delimiter = ',',
            required = true,
            value_parser = one_of(Provider::ALL, Provider::as_str)
        )]
        cloud_providers: Vec<Provider>,
        /// Each provider's own name of the region, comma-separated PROVIDER=REGION
        /// (e.g. aws=us-east-1,gcp=us-east4); providers must be in --cloud-providers.
        #[arg(long, value_name = "P=REGION,…", value_delimiter = ',', value_parser = provider_region)]
        provider_regions: Vec<(Provider, String)>,
        /// Price factor of the region (> 0, ≤ 100, at most 3 decimal places), e.g. 0.7.
        #[arg(long, value_name = "DECIMAL")]
        cost_multiplier: String,
        /// Region status [default: active].
        #[arg(long, value_parser = one_of(RegionStatus::ALL, RegionStatus::as_str))]
        status: Option<RegionStatus>,
    },
}

/// Parses `PROVIDER=REGION`.
fn provider_region(raw: &str) -> anyhow::Result<(Provider, String)> {
    let Some((provider, region)) = raw.split_once('=') else {
        anyhow::bail!("expected PROVIDER=REGION, e.g. aws=us-east-1");
    };
    Ok((provider.trim().parse()?, region.trim().to_owned()))
}

pub async fn run(args: RegionsArgs) -> anyhow::Result<()> {
    let api = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        RegionsCommand::List => show(json, &api.get("regions", &[]).await?, list),
        RegionsCommand::Get { code } => {
            let path = format!("regions/{}", segment("region code", &code)?);
            show(json, &api.get(&path, &[]).await?, detail)
        }
        RegionsCommand::Put {
            code,
            name,
            country,
            city,
            cloud_providers,
            provider_regions,
            cost_multiplier,
            status,
        } => {
            let mut mapping = BTreeMap::new();
            for (provider, region) in provider_regions {
                if mapping.insert(provider.as_str(), region).is_some() {
                    anyhow::bail!("--provider-regions names {provider} twice");
                }
            }
            let body = compact(json!({
                "name": name,
                "country": country,
                "city": city,
                "cloud_providers": cloud_providers,
                "provider_regions": mapping,
                // As text, so the server reads exactly the digits given.
                "cost_multiplier": cost_multiplier,
                "status": status,
            }));
            let path = format!("regions/{}", segment("region code", &code)?);
            show(json, &api.put(&path, body).await?, detail)
        }
    }
}

/// `aws=us-east-1,gcp=us-east4`, or `missing` when empty.
fn provider_names(r: &Value, missing: &str) -> String {
    match r["provider_regions"].as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(p, name)| format!("{p}={}", name.as_str().map_or_else(|| name.to_string(), str::to_owned)))
            .collect::<Vec<_>>()
            .join(","),
        _ => missing.to_owned(),
    }
}

fn list(page: &Value) {
    let rows: Vec<Vec<String>> = rows(page)
        .iter()
        .map(|r| {
            vec![
                text(r, "code", "-"),
                text(r, "name", "-"),
                text(r, "country", "-"),
                text(r, "city", "-"),
                text(r, "cloud_providers", "-"),
                text(r, "cost_multiplier", "-"),
                text(r, "status", "-"),
            ]
        })
        .collect();
    if rows.is_empty() {
        output::line("no regions");
        return;
    }
    output::table(
        &["code", "name", "country", "city", "providers", "cost", "status"],
        &rows,
    );
}

fn detail(r: &Value) {
    details(&[
        ("code", text(r, "code", "-")),
        ("name", text(r, "name", "-")),
        ("country", text(r, "country", "-")),
        ("city", text(r, "city", "-")),
        ("providers", text(r, "cloud_providers", "-")),
        ("provider regions", provider_names(r, "-")),
        ("cost multiplier", text(r, "cost_multiplier", "-")),
        ("status", text(r, "status", "-")),
        ("created", when(r, "created_at", "-")),
        ("updated", when(r, "updated_at", "-")),
    ]);
}
