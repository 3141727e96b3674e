//! Console sessions over HTTP against a real PostgreSQL: sign-in with the
//! operator token or a key, what ends a session (a revoked key, a rotated
//! operator token, idleness, sign-out), the sign-in limit, CSRF on forms,
//! a tenant kept to its own pages, and escaping of what tenants typed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use crosslogic_console::{router, ConsoleSettings, ConsoleState};
use crosslogic_control::admin::AdminState;
use crosslogic_core::{Actor, ApiKeyRole, ApiKeyStatus};
use crosslogic_tenancy::{self as tenancy, CreateEnvironment, CreateKey, CreateTenant};
use crosslogic_testkit::TestDb;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use secrecy::SecretString;
use uuid::Uuid;

const TOKEN: &str = "console-sessions-admin-token-0123456789";

struct Console {
    base: String,
    http: reqwest::Client,
}

async fn serve(pool: &crosslogic_db::PgPool, token: &str, settings: ConsoleSettings) -> Console {
    let admin = AdminState::new(pool.clone(), Some(&SecretString::from(token.to_owned())));
    let app = router(ConsoleState::new(admin, settings)).into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Console {
        base,
        http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
    }
}

/// `name=value` of every cookie a response sets.
fn cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

impl Console {
    async fn get(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in; the session cookie, or the refusal's status.
    async fn sign_in(&self, credential: &str) -> Result<String, reqwest::StatusCode> {
        let page = self.get("/console/login", "").await;
        let login = cookies(page.headers())
            .into_iter()
            .find(|c| c.starts_with("cl_login="))
            .unwrap();
        let csrf = hidden(&page.text().await.unwrap(), "login_csrf");
        let resp = self
            .post(
                "/console/login",
                &login,
                &[("credential", credential), ("login_csrf", &csrf), ("next", "/console")],
            )
            .await;
        if resp.status() != 303 {
            return Err(resp.status());
        }
        let set = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        let session = set.iter().find(|c| c.starts_with("cl_session=")).unwrap();
        assert!(
            session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Path=/console"),
            "{session}"
        );
        assert!(
            !session.contains("Secure"),
            "plain HTTP without a TLS proxy: not Secure"
        );
        Ok(session.split(';').next().unwrap().to_owned())
    }
}

async fn tenant_key(pool: &crosslogic_db::PgPool, name: &str, role: ApiKeyRole) -> (Uuid, Uuid, String) {
    let actor = Actor::system("test");
    let t = tenancy::create_tenant(
        pool,
        &actor,
        CreateTenant {
            name: name.into(),
            email: format!("{}@sessions.test", Uuid::new_v4().simple()),
            billing_plan: None,
            stripe_customer_id: None,
            region_preferences: None,
            metadata: None,
        },
        None,
    )
    .await
    .unwrap();
    let e = tenancy::create_environment(
        pool,
        &actor,
        t.id,
        CreateEnvironment {
            name: "prod".into(),
            region: None,
            model_list: None,
            quota_tokens_per_day: None,
            quota_tokens_per_minute: None,
            concurrency_limit: None,
            rate_limit_requests_per_min: None,
        },
    )
    .await
    .unwrap();
    let k = tenancy::create_key(
        pool,
        &actor,
        t.id,
        CreateKey {
            environment_id: e.id,
            name: Some("console".into()),
            role: Some(role),
            user_id: None,
            rate_limit_requests_per_min: None,
            rate_limit_tokens_per_min: None,
            concurrency_limit: None,
            expires_at: None,
            metadata: None,
        },
    )
    .await
    .unwrap();
    (t.id, k.key.id, k.key_secret)
}

#[tokio::test]
async fn sessions_end_when_their_credential_does_and_forms_need_the_session_token() {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let c = serve(&db.pool, TOKEN, ConsoleSettings::default()).await;

    // Signed out: every page redirects to sign-in, keeping where it was going.
    let r = c.get("/console/tenants?q=a", "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[LOCATION],
        "/console/login?next=%2Fconsole%2Ftenants%3Fq%3Da"
    );

    // A wrong token, and a sign-in form that did not come from the page.
    assert_eq!(
        c.sign_in("not-the-operator-token").await,
        Err(reqwest::StatusCode::UNAUTHORIZED)
    );
    let forged = c
        .post(
            "/console/login",
            "cl_login=abc",
            &[("credential", TOKEN), ("login_csrf", "xyz")],
        )
        .await;
    assert_eq!(forged.status(), 403);

    // The operator, and a tenant named to break out of HTML.
    let op = c.sign_in(TOKEN).await.unwrap();
    let (a, a_key_id, a_key) = tenant_key(&db.pool, "<script>alert('a')</script>", ApiKeyRole::Admin).await;
    let (b, _, b_key) = tenant_key(&db.pool, "Beta Sessions", ApiKeyRole::Developer).await;
    let list = c.get("/console/tenants?q=ALERT", &op).await;
    assert_eq!(list.status(), 200);
    let csp = list.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(list.headers()["cache-control"], "no-store");
    let html = list.text().await.unwrap();
    assert!(html.contains("&lt;script&gt;alert('a')&lt;/script&gt;"), "escaped");
    assert!(!html.contains("<script>alert"), "never raw");
    assert!(!html.contains("Beta Sessions"), "search by name, case-insensitive");
    assert!(!html.contains(TOKEN), "the token never reaches a page");

    // Forms need the session's CSRF token and this site's Origin.
    let page = c.get(&format!("/console/tenants/{b}"), &op).await.text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let no_token = c.post(&format!("/console/tenants/{b}/suspend"), &op, &[]).await;
    assert_eq!(no_token.status(), 403);
    let other_site = c
        .http
        .post(format!("{}/console/tenants/{b}/suspend", c.base))
        .header(COOKIE, &op)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(other_site.status(), 403);
    assert_eq!(
        tenancy::get_tenant(&db.pool, b).await.unwrap().status.as_str(),
        "active"
    );
    let ok = c
        .post(&format!("/console/tenants/{b}/suspend"), &op, &[("csrf", &csrf)])
        .await;
    assert_eq!(ok.status(), 303);
    assert_eq!(
        tenancy::get_tenant(&db.pool, b).await.unwrap().status.as_str(),
        "suspended"
    );

    // A suspended tenant's key cannot sign in; a tenant stays on its pages.
    assert_eq!(c.sign_in(&b_key).await, Err(reqwest::StatusCode::UNAUTHORIZED));
    let tenant = c.sign_in(&a_key).await.unwrap();
    assert_eq!(c.get("/console/tenants", &tenant).await.status(), 403);
    assert_eq!(c.get(&format!("/console/tenants/{b}"), &tenant).await.status(), 403);
    assert_eq!(c.get("/console/keys", &tenant).await.status(), 200);
    assert_eq!(
        c.get("/console/keys", &op).await.status(),
        403,
        "the operator uses the tenant's page"
    );

    // Revoking the key ends its session at once.
    tenancy::set_key_status(&db.pool, &Actor::system("test"), a_key_id, ApiKeyStatus::Revoked)
        .await
        .unwrap();
    assert_eq!(c.get("/console/keys", &tenant).await.status(), 303);
    let _ = a;

    // Idle sessions end.
    sqlx::query("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(c.get("/console", &op).await.status(), 303);

    // A rotated operator token ends the operator's sessions.
    let op = c.sign_in(TOKEN).await.unwrap();
    assert_eq!(c.get("/console", &op).await.status(), 200);
    let rotated = serve(
        &db.pool,
        "another-operator-token-0123456789",
        ConsoleSettings::default(),
    )
    .await;
    assert_eq!(rotated.get("/console", &op).await.status(), 303);

    // Sign-out ends the session on the server, not only in the browser.
    let op = c.sign_in(TOKEN).await.unwrap();
    let csrf = hidden(&c.get("/console", &op).await.text().await.unwrap(), "csrf");
    let out = c.post("/console/logout", &op, &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    assert!(
        cookies(out.headers()).iter().any(|c| c == "cl_session="),
        "the cookie is removed"
    );
    assert_eq!(c.get("/console", &op).await.status(), 303);
    db.drop_db().await;
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let db = TestDb::new().await;
    crosslogic_db::migrate::migrate(&db.pool).await.unwrap();
    let settings = ConsoleSettings {
        login_attempts_per_min: 3,
        ..Default::default()
    };
    let c = serve(&db.pool, TOKEN, settings).await;
    for _ in 0..3 {
        assert_eq!(
            c.sign_in("wrong-token-000000000000").await,
            Err(reqwest::StatusCode::UNAUTHORIZED)
        );
    }
    // Even the right token waits once the limit is spent.
    assert_eq!(c.sign_in(TOKEN).await, Err(reqwest::StatusCode::TOO_MANY_REQUESTS));
    db.drop_db().await;
}
