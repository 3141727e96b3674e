"""The console in a real browser (headless Chromium through Playwright),
against a running `crosslogic serve --provisioner local`.

Run by crates/cli/tests/console_browser.rs, which starts the server and
passes: BASE (http://host:port), ADMIN_TOKEN, OUT (screenshot directory),
DATABASE_URL (to age sessions with psql), CHROMIUM (the browser binary).
Every step asserts what a person would check; screenshots are saved to OUT
so a person can look at them. Exits non-zero on the first failure.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["BASE"]
TOKEN = os.environ["ADMIN_TOKEN"]
OUT = os.environ["OUT"]
DB = os.environ["DATABASE_URL"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MODEL = "llama-3-8b"
# Chromium flags for a closed network (no background fetches, no QUIC).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
expect.set_options(timeout=15_000)


def shot(page, name):
    path = os.path.join(OUT, name + ".png")
    page.screenshot(path=path, full_page=True)
    print("screenshot:", path, flush=True)


def step(text):
    print("--", text, flush=True)


class Hook(http.server.BaseHTTPRequestHandler):
    """A tenant's webhook receiver: accepts every delivery."""
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Hook.received.append((self.headers.get("webhook-signature"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def admin(method, path, body=None):
    """The admin API, as another operator tool would call it."""
    req = urllib.request.Request(BASE + "/admin/v1" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def chat(key, n, content="Hello from the browser test"):
    """n chat completions with `key`, as any OpenAI client sends them."""
    for _ in range(n):
        req = urllib.request.Request(
            BASE + "/v1/chat/completions",
            data=json.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}],
                             "max_tokens": 16}).encode(),
            headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, r.status


def wait_served(key):
    """Until the gateways route to the new node (their routing table
    refreshes every second): GET /v1/models lists only served models."""
    deadline = time.time() + 20
    while True:
        req = urllib.request.Request(BASE + "/v1/models", headers={"Authorization": "Bearer " + key})
        with urllib.request.urlopen(req, timeout=10) as r:
            if any(m["id"] == MODEL for m in json.load(r)["data"]):
                return
        assert time.time() < deadline, MODEL + " is not served 20 s after its node became active"
        time.sleep(0.2)


def sign_in(page, credential):
    page.goto(BASE + "/console")
    expect(page).to_have_url(BASE + "/console/login?next=%2Fconsole")
    page.get_by_label("Operator token or API key").fill(credential)
    page.get_by_role("button", name="Sign in").click()


def create_key(page, name, role):
    """Fills the new-key form on the current page; returns the secret shown once."""
    page.get_by_label("Name", exact=True).last.fill(name)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Key created")).to_be_visible()
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("cl_"), secret
    return secret


def new_tenant(page, name, email):
    page.goto(BASE + "/console/tenants")
    form = page.locator("form[action='/console/tenants']")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Email").fill(email)
    form.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    tenant_url = page.url
    page.get_by_label("New environment").fill("prod")
    page.get_by_role("button", name="Create environment").click()
    expect(page.locator("#environments")).to_contain_text("prod")
    return tenant_url


def main():
    os.makedirs(OUT, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        op = browser.new_context(viewport={"width": 1280, "height": 900})
        page = op.new_page()
        console_errors = []
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))

        step("a signed-out visitor is sent to the sign-in page; a wrong token is refused")
        page.goto(BASE + "/console")
        expect(page.get_by_role("heading", name="Sign in to CrossLogic")).to_be_visible()
        page.keyboard.press("Tab")
        page.get_by_label("Operator token or API key").fill("not-the-token-at-all")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not valid")
        shot(page, "01-sign-in-refused")
        console_errors.clear()  # the refused sign-in's 401, expected
        assert TOKEN not in page.content(), "the token must never be in a page"

        step("the operator signs in and sees the overview")
        page.get_by_label("Operator token or API key").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Platform overview")).to_be_visible()
        cookies = {c["name"]: c for c in op.cookies()}
        s = cookies["cl_session"]
        assert s["httpOnly"] and s["sameSite"] == "Strict" and s["path"] == "/console", s
        assert TOKEN not in page.content()

        step("keyboard: the first Tab reaches the skip link")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"

        step("the operator creates a tenant, an environment and an admin key")
        acme = new_tenant(page, "Acme Browser", "ops@acme-browser.test")
        acme_key = create_key(page, "acme-admin", "admin")
        shot(page, "02-key-shown-once")
        page.get_by_role("link", name="Done").click()
        expect(page.locator("#keys")).to_contain_text("acme-admin")
        shot(page, "03-tenant-detail")

        step("a second tenant with its own key, for isolation")
        new_tenant(page, "Beta Browser", "ops@beta-browser.test")
        beta_key = create_key(page, "beta-dev", "developer")

        step("the operator creates a deployment and watches its node become active")
        page.goto(BASE + "/console/deployments")
        form = page.locator("form[action='/console/deployments']")
        form.get_by_label("Name").fill("browser-llama")
        form.get_by_label("Model").select_option(MODEL)
        form.get_by_label("Min replicas").fill("1")
        form.get_by_label("Max replicas").fill("1")
        form.get_by_label("Provider").select_option("local")
        form.get_by_role("button", name="Create deployment").click()
        expect(page.get_by_role("status")).to_contain_text("browser-llama created")
        expect(page.locator("tr[data-deployment='browser-llama']")).to_be_visible()
        shot(page, "04-deployments")
        deadline = time.time() + 120
        while True:
            page.goto(BASE + "/console/nodes")
            if page.locator(f"tr[data-model='{MODEL}'][data-status='active']").count() > 0:
                break
            assert time.time() < deadline, "no active node within 120 s:\n" + page.content()
            time.sleep(1)
        shot(page, "05-nodes-active")
        page.locator(f"tr[data-model='{MODEL}'][data-status='active'] a").first.click()
        expect(page.locator("#launch-log")).to_contain_text("launch")
        shot(page, "06-node-launch-log")

        step("traffic appears in the overview charts")
        wait_served(acme_key)
        chat(acme_key, 6)
        chat(beta_key, 3)
        # Usage rows are written in batches off the request path: reload
        # until the overview counts all nine requests.
        deadline = time.time() + 20
        while True:
            page.goto(BASE + "/console?range=hour")
            if page.locator("#stat-requests").inner_text().startswith("9 "):
                break
            assert time.time() < deadline, page.locator("#stat-requests").inner_text()
            time.sleep(0.5)
        expect(page.locator("#stat-rps")).not_to_have_text("0")
        expect(page.locator(".plot[data-chart='chart-requests']")).to_have_attribute("data-drawn", "1")
        shot(page, "07-overview-traffic")
        page.goto(acme + "?range=day")
        expect(page.locator(".plot[data-chart='chart-tokens']")).to_have_attribute("data-drawn", "1")

        step("the operator grants a credit; the tenant's balance shows it")
        page.goto(acme)
        page.locator("details.manage > summary").click()
        page.get_by_label("Credit (USD)").fill("25")
        page.get_by_role("button", name="Grant credit").click()
        expect(page.get_by_role("status")).to_contain_text("$25.00")
        expect(page.locator("#credits")).to_contain_text("promotional")

        step("the event log follows live; deliveries and the Stripe log answer")
        page.goto(BASE + "/console/events")
        expect(page.locator("#events")).to_contain_text("tenant.created")
        admin("POST", "/tenants", {"name": "Live Feed", "email": "live@feed-browser.test"})
        expect(page.locator("#event-feed tr.new").first).to_contain_text("tenant.created", timeout=20_000)
        shot(page, "12-events-live")
        page.goto(BASE + "/console/deliveries")
        expect(page.get_by_role("heading", name="Notification deliveries")).to_be_visible()
        page.goto(BASE + "/console/billing")
        expect(page.get_by_role("heading", name="Stripe export log")).to_be_visible()
        step("the operator curates the catalog: a model's price, a new region")
        page.goto(BASE + "/console/catalog")
        expect(page.locator("#gpus")).to_contain_text("H100")
        page.locator("#models").get_by_role("link", name=MODEL, exact=True).click()
        page.get_by_label("Output price, USD per million tokens").fill("0.30")
        page.get_by_role("button", name="Save model").click()
        expect(page.get_by_role("status")).to_contain_text(f"Model {MODEL} saved")
        expect(page.locator("#models tr", has_text=MODEL).first).to_contain_text("$0.30")
        page.get_by_role("link", name="Add a region").click()
        page.get_by_label("Code").fill("eu-browser")
        page.get_by_label("Name", exact=True).fill("Europe (browser test)")
        page.get_by_label("Country").fill("IE")
        page.get_by_label("City").fill("Dublin")
        page.get_by_label("Clouds (comma-separated)").fill("aws")
        page.get_by_label("Cloud region names").fill("aws=eu-west-1")
        page.get_by_role("button", name="Save region").click()
        expect(page.locator("#regions")).to_contain_text("eu-browser")
        shot(page, "14-catalog")

        step("the same overview at a phone's width")
        phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=op.storage_state())
        pp = phone.new_page()
        pp.goto(BASE + "/console")
        expect(pp.get_by_role("heading", name="Platform overview")).to_be_visible()
        assert pp.evaluate("document.documentElement.scrollWidth") <= 390 + 1, "no horizontal page scroll on a phone"
        shot(pp, "08-overview-phone")
        phone.close()

        step("a tenant signs in with its admin key and sees only its own usage")
        tenant = browser.new_context(viewport={"width": 1280, "height": 900})
        tp = tenant.new_page()
        sign_in(tp, acme_key)
        expect(tp.get_by_role("heading", name="Acme Browser")).to_be_visible()
        row = tp.locator("#usage-by-model tr", has_text=MODEL)
        expect(row.locator("td").nth(1)).to_have_text("6")
        expect(tp.locator("#usage-by-day tbody tr").first.locator("td").nth(1)).to_have_text("6")
        assert "Beta Browser" not in tp.content()
        shot(tp, "09-tenant-usage")

        step("the tenant creates a key (shown once) and revokes it")
        tp.goto(BASE + "/console/keys")
        extra = create_key(tp, "ci-temporary", "developer")
        tp.get_by_role("link", name="Done").click()
        tp.once("dialog", lambda d: d.accept())
        tp.locator("tr", has_text="ci-temporary").get_by_role("button", name="Revoke").click()
        expect(tp.locator("tr", has_text="ci-temporary")).to_contain_text("revoked")
        shot(tp, "10-tenant-keys")
        req = urllib.request.Request(BASE + "/v1/models", headers={"Authorization": "Bearer " + extra})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("a revoked key still works")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code

        step("the tenant adds a signed webhook channel and sends a test")
        hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        tp.goto(BASE + "/console/channels")
        tp.get_by_label("Kind").select_option("webhook")
        tp.get_by_label("Destination").fill(f"http://127.0.0.1:{hook.server_port}/hook")
        tp.get_by_role("button", name="Create channel").click()
        assert tp.locator("#new-key-secret").inner_text().startswith("whsec_")
        tp.get_by_role("link", name="Done").click()
        tp.locator("tr[data-channel='webhook']").get_by_role("button", name="Send test").click()
        expect(tp.get_by_role("status")).to_contain_text("Test delivered")
        expect(tp.locator("#channel-deliveries")).to_contain_text("notification.test")
        assert Hook.received and Hook.received[0][0].startswith("v1,"), Hook.received
        shot(tp, "13-tenant-channels")
        hook.shutdown()

        step("a tenant cannot open operator pages nor touch another tenant's key")
        r = tp.goto(BASE + "/console/tenants")
        assert r.status == 403, r.status
        tp.goto(BASE + "/console/keys")
        csrf = tp.locator("form[action='/console/keys'] input[name='csrf']").get_attribute("value")
        others = subprocess.run(["psql", DB, "-Atc",
                                 "SELECT k.id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                                 "WHERE t.name = 'Beta Browser' LIMIT 1"],
                                check=True, capture_output=True, text=True).stdout.strip()
        resp = tp.request.post(BASE + f"/console/keys/{others}/revoke", form={"csrf": csrf},
                               headers={"Origin": BASE})
        assert resp.status == 404, resp.status
        chat(beta_key, 1)  # Beta's key still works

        step("CSRF: a form without the session's token is refused")
        resp = tp.request.post(BASE + "/console/keys", form={"environment_id": others, "name": "x"},
                               headers={"Origin": BASE})
        assert resp.status == 403, resp.status
        resp = tp.request.post(BASE + "/console/keys", form={"csrf": csrf, "environment_id": others},
                               headers={"Origin": "http://evil.example"})
        assert resp.status == 403, resp.status

        step("an idle session expires; signing out ends a session")
        subprocess.run(["psql", DB, "-qc",
                        "UPDATE console_sessions SET last_seen_at = now() - interval '1 day' "
                        "WHERE api_key_id IS NOT NULL"], check=True)
        tp.goto(BASE + "/console/keys")
        expect(tp.get_by_role("heading", name="Sign in to CrossLogic")).to_be_visible()
        page.goto(BASE + "/console")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("status")).to_contain_text("Signed out")
        page.goto(BASE + "/console/tenants")
        expect(page.get_by_role("heading", name="Sign in to CrossLogic")).to_be_visible()
        shot(page, "11-signed-out")

        assert not console_errors, console_errors
        browser.close()
    # For the Rust side: no secret may appear in the server's log.
    with open(os.path.join(OUT, "secrets.json"), "w") as f:
        json.dump([acme_key, beta_key, extra], f)
    print("console browser journeys passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, file=sys.stderr, flush=True)
        sys.exit(1)
