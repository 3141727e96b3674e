//! `crosslogic serve --demo`: the operator token kept in the data
//! directory, the demo platform (`crosslogic_control::demo`), and the
//! banner printed once its nodes serve — everything a newcomer needs to
//! make a first call, and nothing secret written to the logs.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use crosslogic_control::demo::{Demo, CHAT_MODEL, EMBEDDING_MODEL};
use secrecy::{ExposeSecret, SecretString};

use crate::output;

/// The operator token of the demo: read from `data_dir/admin-token`, or
/// created there (mode 0600) on the first start. Returns the token, its
/// file, and whether it was created now.
pub fn admin_token(data_dir: &Path) -> anyhow::Result<(SecretString, PathBuf, bool)> {
    let path = data_dir.join("admin-token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let token = text.trim().to_owned();
        if token.len() >= 16 {
            return Ok((SecretString::from(token), path, false));
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    // 244 random bits (two v4 UUIDs), hex.
    let token = format!(
        "clop_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write the operator token to {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(f, "{token}")?;
    Ok((SecretString::from(token), path, true))
}

/// Waits until the demo's models are served, then prints the banner.
/// Gives up quietly (with a log line) after `within`.
pub async fn announce(base: String, token: SecretString, token_file: PathBuf, demo: Demo, within: Duration) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        if ready(&http, &base, &token, &demo).await {
            break;
        }
        if Instant::now() > deadline {
            tracing::warn!("the demo's nodes are not serving yet; see `crosslogic nodes list` and their logs");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for line in banner(&base, &token_file, &demo) {
        output::line(&line);
    }
}

/// Both demo models answer through the gateway (with the key, when this
/// start knows it), or have active nodes (later starts).
async fn ready(http: &reqwest::Client, base: &str, token: &SecretString, demo: &Demo) -> bool {
    let wanted = [CHAT_MODEL, EMBEDDING_MODEL];
    if let Some(key) = &demo.key_secret {
        let Ok(resp) = http.get(format!("{base}/v1/models")).bearer_auth(key).send().await else {
            return false;
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            return false;
        };
        let served: Vec<&str> = body["data"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        return wanted.iter().all(|m| served.contains(m));
    }
    let Ok(resp) = http
        .get(format!("{base}/admin/v1/nodes?status=active"))
        .bearer_auth(token.expose_secret())
        .send()
        .await
    else {
        return false;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return false;
    };
    let active: Vec<&str> = body["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n["model_name"].as_str())
        .collect();
    wanted.iter().all(|m| active.contains(m))
}

/// The banner's lines.
pub fn banner(base: &str, token_file: &Path, demo: &Demo) -> Vec<String> {
    let token = token_file.display();
    let mut out = vec![
        String::new(),
        format!("CrossLogic is running (demo) at {base}"),
        String::new(),
    ];
    match &demo.key_secret {
        Some(key) => {
            out.push(format!("  API key (shown once, keep it): {key}"));
            out.push(String::new());
            out.push("  Chat completion:".into());
            out.push(format!(
                "    curl {base}/v1/chat/completions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\"
            ));
            out.push(format!(
                "      -d '{{\"model\": \"{CHAT_MODEL}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
            ));
            out.push(String::new());
            out.push("  With the official OpenAI SDK (pip install openai):".into());
            out.push("    from openai import OpenAI".into());
            out.push(format!(
                "    client = OpenAI(base_url=\"{base}/v1\", api_key=\"{key}\")"
            ));
            out.push(format!(
                "    print(client.chat.completions.create(model=\"{CHAT_MODEL}\", messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}]).choices[0].message.content)"
            ));
            out.push(format!(
                "    print(len(client.embeddings.create(model=\"{EMBEDDING_MODEL}\", input=\"Hello!\").data[0].embedding))"
            ));
        }
        None => {
            out.push(format!(
                "  API key: {}_… (created at the first start; its secret is not shown again)",
                demo.key_prefix
            ));
            out.push(format!(
                "  Another key: CROSSLOGIC_URL={base} ADMIN_API_TOKEN=$(cat {token}) crosslogic keys create --tenant {} --environment {}",
                demo.tenant_id, demo.environment_id
            ));
            out.push(format!(
                "  Models: {CHAT_MODEL} (chat), {EMBEDDING_MODEL} (embeddings); base URL {base}/v1"
            ));
        }
    }
    out.push(format!(
        "  API reference: {base}/docs (the OpenAPI document: {base}/openapi.json)"
    ));
    out.push(format!(
        "  Console: {base}/console (sign in with the operator token below, or with the API key for the tenant's view)"
    ));
    out.push(String::new());
    out.push(format!("  Operator token: {token}"));
    out.push(format!(
        "  Operate it: export CROSSLOGIC_URL={base} ADMIN_API_TOKEN=$(cat {token}); then crosslogic --help,"
    ));
    out.push(format!(
        "    crosslogic deployments list, crosslogic nodes list, crosslogic billing usage --tenant {}",
        demo.tenant_id
    ));
    out.push(String::new());
    out
}
