//! The HTTP side of the client commands: the operator token, the admin API's
//! URL, and errors worded for the operator (the API's own message, or why
//! the server could not be reached). Every request has a whole-request
//! timeout except a streamed `GET` (following a node's logs), which only
//! has the connect timeout.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::ClientOpts;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of `/admin/v1` on one server.
pub struct Client {
    /// Without a whole-request timeout: set per request, except streams.
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

    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::PUT, self.url(path, &[])?, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::DELETE, self.url(path, &[])?, None).await
    }

    /// `GET` whose body is read as it arrives (no whole-request timeout):
    /// the successful response, or the API's error.
    pub async fn stream(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Streamed<'_>> {
        let resp = self
            .request(Method::GET, self.url(path, query)?)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Streamed { client: self, resp });
        }
        let text = resp.text().await.map_err(|e| self.transport_error(&e))?;
        Err(self.api_error(status, &text))
    }

    /// A request carrying the operator token.
    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(self.token.expose_secret())
    }

    /// Sends one request; the answer's JSON (`Null` for an empty body) or
    /// an error whose text is what the operator should read.
    async fn send(&self, method: Method, url: Url, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self.request(method, url).timeout(REQUEST_TIMEOUT);
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

    /// The error of a request that got no (complete) answer.
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

/// The body of a successful streamed `GET` ([`Client::stream`]).
pub struct Streamed<'a> {
    client: &'a Client,
    resp: Response,
}

impl Streamed<'_> {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<impl AsRef<[u8]>>> {
        self.resp.chunk().await.map_err(|e| self.client.transport_error(&e))
    }
}

/// A name or code from the command line as one URL path segment: refused
/// when it would change the path (empty, `.`, `..`), percent-encoded
/// otherwise, so `/`, `?` or `#` in it cannot reach another route.
pub fn segment(what: &str, raw: &str) -> anyhow::Result<String> {
    if matches!(raw, "" | "." | "..") {
        bail!("{what} {raw:?} is not a valid {what}");
    }
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
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
    use super::{admin_base, segment};

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

    #[test]
    fn names_stay_one_path_segment() {
        assert_eq!(segment("model", "qwen-2.5-7b").unwrap(), "qwen-2.5-7b");
        assert_eq!(segment("model", "org/m:1 x?y#z").unwrap(), "org%2Fm%3A1%20x%3Fy%23z");
        for bad in ["", ".", ".."] {
            assert!(segment("model", bad).is_err(), "{bad:?}");
        }
        let (base, _) = admin_base("http://h:1").unwrap();
        let url = base
            .join(&format!("models/{}", segment("model", "../../x").unwrap()))
            .unwrap();
        assert_eq!(url.as_str(), "http://h:1/admin/v1/models/..%2F..%2Fx");
    }
}
