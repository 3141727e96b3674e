//! The HTTP side of the client commands: the operator token, the admin API's
//! URL, and errors worded for the operator (the API's own message, or why
//! the server could not be reached).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::ClientOpts;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of `/admin/v1` on one server.
pub struct Client {
    http: reqwest::Client,
    /// `…/admin/v1/`, always ending in a slash.
    base: Url,
    /// The URL as the operator should see it (no password).
    shown: String,
    token: SecretString,
}

impl Client {
    /// Reads `ADMIN_API_TOKEN` and checks `--url`; sends nothing yet.
    pub fn new(opts: &ClientOpts) -> anyhow::Result<Client> {
        let token = match std::env::var("ADMIN_API_TOKEN") {
            Ok(t) if !t.trim().is_empty() => SecretString::from(t.trim().to_owned()),
            Ok(_) | Err(std::env::VarError::NotPresent) => bail!(
                "ADMIN_API_TOKEN is not set: export ADMIN_API_TOKEN=<the operator token `crosslogic serve` was \
                 started with> and run the command again"
            ),
            Err(std::env::VarError::NotUnicode(_)) => bail!("ADMIN_API_TOKEN is not valid UTF-8"),
        };
        let (base, shown) = admin_base(&opts.url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("crosslogic-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client {
            http,
            base,
            shown,
            token,
        })
    }

    /// The URL of `path` (relative to `/admin/v1/`) with a query.
    fn url(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Url> {
        let mut url = self
            .base
            .join(path)
            .with_context(|| format!("bad admin API path {path:?}"))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(Method::GET, self.url(path, query)?, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::POST, self.url(path, &[])?, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::PATCH, self.url(path, &[])?, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::DELETE, self.url(path, &[])?, None).await
    }

    /// Sends one request; the answer's JSON (`Null` for an empty body) or
    /// an error whose text is what the operator should read.
    async fn send(&self, method: Method, url: Url, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, url).bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(&e))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} answered {status} with a body that is not JSON: is it a crosslogic server?",
                    self.shown
                )
            });
        }
        Err(self.api_error(status, &text))
    }

    /// The error of an answer that is not a success.
    fn api_error(&self, status: StatusCode, body: &str) -> anyhow::Error {
        let message = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
        match (status, message) {
            (StatusCode::UNAUTHORIZED, message) => anyhow!(
                "{} (HTTP 401): ADMIN_API_TOKEN does not match the token `crosslogic serve` at {} was started with",
                message.as_deref().unwrap_or("the admin token was refused"),
                self.shown
            ),
            (_, Some(message)) => anyhow!("{message}"),
            (_, None) => {
                let snippet: String = body.trim().chars().take(200).collect();
                anyhow!(
                    "{} answered {status} without an admin API error: is it a crosslogic server? {snippet}",
                    self.shown
                )
            }
        }
    }

    /// The error of a request that got no answer.
    fn transport_error(&self, err: &reqwest::Error) -> anyhow::Error {
        if err.is_connect() {
            anyhow!(
                "cannot reach crosslogic at {}: is `crosslogic serve` running? ({})",
                self.shown,
                root_cause(err)
            )
        } else if err.is_timeout() {
            anyhow!(
                "crosslogic at {} did not answer within {} seconds",
                self.shown,
                REQUEST_TIMEOUT.as_secs()
            )
        } else {
            anyhow!("request to crosslogic at {} failed: {}", self.shown, root_cause(err))
        }
    }
}

/// The innermost error of a chain (e.g. "Connection refused (os error 111)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `…/admin/v1/` under the server's base URL (accepting a URL that already
/// ends in `/admin/v1`), and the base URL as shown in messages.
fn admin_base(raw: &str) -> anyhow::Result<(Url, String)> {
    let raw = raw.trim();
    let mut url =
        Url::parse(raw).with_context(|| format!("--url {raw:?} is not a URL such as http://127.0.0.1:8080"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--url {raw:?} must start with http:// or https://");
    }
    url.set_query(None);
    url.set_fragment(None);
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let shown = shown.as_str().trim_end_matches('/').to_owned();
    let path = url.path().trim_end_matches('/').to_owned();
    let path = path.strip_suffix("/admin/v1").unwrap_or(&path);
    url.set_path(&format!("{path}/admin/v1/"));
    Ok((url, shown))
}

#[cfg(test)]
mod tests {
    use super::admin_base;

    #[test]
    fn the_admin_base_is_found_under_any_server_url() {
        for (raw, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/admin/v1/"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/admin/v1/"),
            ("https://cl.example.com/proxy", "https://cl.example.com/proxy/admin/v1/"),
            ("http://h:1/admin/v1/", "http://h:1/admin/v1/"),
            (" http://h:1/x/admin/v1?q=1 ", "http://h:1/x/admin/v1/"),
        ] {
            assert_eq!(admin_base(raw).unwrap().0.as_str(), base, "{raw}");
        }
        assert_eq!(admin_base("http://u:secret@h:1/").unwrap().1, "http://u@h:1");
        assert!(admin_base("localhost:8080").is_err());
        assert!(admin_base("ftp://h/").is_err());
        assert!(admin_base("not a url").is_err());
    }
}
