"""Runs the side-by-side benchmark of scripts/bench.sh (see there).

Starts, on loopback: `crosslogic engine-sim` (zero latency), vllm-router in
front of it, `crosslogic serve` (role all, in-process limits) with a node
agent registering the simulator, and two gateway-only processes (one with
in-process limits, one with Redis limits), on a throwaway database. Drives
each with wrk, reads each process's CPU time from /proc, and prints one
table. Everything it started is stopped at the end.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlparse, urlunparse

TOKEN = "bench-admin-token-0123456789abcdef"
REGISTRATION = "bench-registration-token-0123456789"
MODEL = "llama-3-8b"
TICKS = os.sysconf("SC_CLK_TCK")
BIG = 2_000_000_000  # limits high enough never to bind


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60, headers=None):
    deadline = time.time() + timeout
    while True:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return r.read()
        except Exception:
            pass
        if time.time() > deadline:
            sys.exit(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


def call(method, url, body=None, token=TOKEN):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def cpu_seconds(pid, children=False):
    """CPU time of `pid`, with that of its children that exited if asked."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, then cutime, cstime.
    return sum(int(x) for x in fields[11:15 if children else 13]) / TICKS


# Processes that end between listing and reading are skipped.
GONE = (FileNotFoundError, ProcessLookupError, PermissionError)


def processes_named(comm):
    """The pids of every process named `comm` on the machine."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == comm:
                        yield pid
            except GONE:
                continue


def cpu_seconds_of(comm):
    """CPU time of every process named `comm` on the machine (all of
    PostgreSQL's server and backends, say), with that of their children
    that exited (a backend that served one psql call ends, and its time
    moves to the postmaster's)."""
    total = 0.0
    for pid in processes_named(comm):
        try:
            total += cpu_seconds(pid, children=True)
        except GONE:
            continue
    return total


def pin(comm, cpus):
    """Sets the CPU affinity of every thread of every process named `comm`
    (new PostgreSQL backends inherit the postmaster's)."""
    for pid in processes_named(comm):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), cpus)
        except GONE:
            continue


def psql(url, sql):
    return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True, text=True).stdout.strip()


def settled_rows(db):
    """usage_records once the writers have flushed (two equal counts 1 s apart)."""
    last = -1
    while True:
        n = int(psql(db, "SELECT count(*) FROM usage_records"))
        if n == last:
            return n
        last = n
        time.sleep(1)


def parse_wrk(out):
    def ms(v):
        n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
        return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    done = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms(lat["50"]), "p99": ms(lat["99"]),
        "requests": int(done.group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1) if errors else "",
    }


def overhead_buckets(url):
    """The gateway's own-time histogram (crosslogic_gateway_overhead_seconds,
    chat completions): {upper bound in s: cumulative count}."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    got = re.findall(r'^crosslogic_gateway_overhead_seconds_bucket\{endpoint="chat_completions",le="([^"]+)"\} (\d+)',
                     text, re.M)
    return {float(le): int(n) for le, n in got}


def quantile_bound(before, after, q):
    """The upper bound (ms) of the histogram bucket holding quantile `q` of
    the observations between two scrapes."""
    delta = sorted((le, after[le] - before.get(le, 0)) for le in after)
    total = delta[-1][1] if delta else 0
    for le, n in delta:
        if total and n >= q * total:
            return le * 1000
    return float("nan")


def ttfb(url, key, n):
    """Time to the first event of `n` streamed completions, one at a time on
    one keep-alive connection (a raw socket: the client adds the same few
    µs to every path). Returns the times in ms."""
    u = urlparse(url)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hello!"}],
                       "max_tokens": 16, "stream": True}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
            + (f"Authorization: Bearer {key}\r\n" if key else "")
            + f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.create_connection((u.hostname, u.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    try:
        for _ in range(n):
            buf = b""
            start = time.perf_counter()
            sock.sendall(head + body)
            first = None
            # Chunked: the response ends with the zero-length chunk after [DONE].
            while not (b"[DONE]" in buf and buf.endswith(b"0\r\n\r\n")):
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError(f"{url} closed the connection")
                buf += data
                if first is None and b"data:" in buf:
                    first = time.perf_counter()
            if b" 200 " not in buf.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"{url}: {buf[:200]!r}")
            times.append((first - start) * 1000)
    finally:
        sock.close()
    return times


def wrk(url, conns, duration, stream, key, warmup=False):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16}
    if stream:
        body["stream"] = True
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write('wrk.method = "POST"\n'
              f"wrk.body = {json.dumps(json.dumps(body))}\n"
              'wrk.headers["Content-Type"] = "application/json"\n'
              + (f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""))
    lua.close()
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{2 if warmup else duration}s", "--latency", "-s", lua.name,
           url + "/v1/chat/completions"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    os.unlink(lua.name)
    return parse_wrk(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--router", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--only", default="", help="comma-separated mode:conns to run, e.g. json:64 (default: all)")
    ap.add_argument("--ttfb", type=int, default=2000, help="streamed requests per path for the time to the first event")
    ap.add_argument("--hold", action="store_true", help="set everything up, print the URLs, key and pids, and wait for Ctrl-C")
    ap.add_argument("--perf", default="", help="directory: `perf record -g` each crosslogic process during its timed runs")
    ap.add_argument("--pin-db", action="store_true",
                    help="PostgreSQL on the last CPU, everything else on the others (restored at the end)")
    a = ap.parse_args()
    # SIGTERM (a background job ignores SIGINT) stops it like Ctrl-C: what
    # it started is stopped and its database dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cpus = os.sched_getaffinity(0)
    if a.pin_db and len(cpus) < 2:
        sys.exit("--pin-db needs at least 2 CPUs")
    only = {x.strip() for x in a.only.split(",") if x.strip()}

    dbname = f"crosslogic_bench_{os.getpid()}"
    psql(a.database_url, f"CREATE DATABASE {dbname}")
    u = urlparse(a.database_url)
    # Loopback: no TLS to PostgreSQL (as with the embedded server of
    # scripts/serve.sh); Debian's packaged server offers TLS with a snakeoil
    # certificate, and `prefer` would encrypt every usage row on both ends.
    query = u.query if "sslmode" in u.query else "&".join(x for x in (u.query, "sslmode=disable") if x)
    db = urlunparse(u._replace(path="/" + dbname, query=query))
    procs, dirs = [], []

    def start(cmd, env=None, name=""):
        log = tempfile.NamedTemporaryFile("w", prefix=f"bench-{name}-", suffix=".log", delete=False)
        p = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=log, start_new_session=True)
        procs.append(p)
        return p

    try:
        if a.pin_db:
            db_cpu = max(cpus)
            # Children (and wrk) inherit the rest; PostgreSQL moves until the end.
            os.sched_setaffinity(0, cpus - {db_cpu})
            pin("postgres", {db_cpu})
        sim_port, router_port = free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = start([a.bin, "engine-sim", "--served-model-name", MODEL, "--port", str(sim_port)], name="sim")
        wait_http(sim_url + "/health")
        # Its metrics exporter on a free port too (default 29000: one left
        # by anything else would stop it from starting).
        router = start([a.router, "--host", "127.0.0.1", "--port", str(router_port), "--worker-urls", sim_url,
                        "--policy", "round_robin", "--log-level", "warning",
                        "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port())], name="router")
        router_url = f"http://127.0.0.1:{router_port}"
        wait_http(router_url + "/health", timeout=120)

        def serve(role, redis):
            port = free_port()
            d = tempfile.mkdtemp(prefix="bench-data-")
            dirs.append(d)
            env = {"DATABASE_URL": db, "ADMIN_API_TOKEN": TOKEN, "NODE_REGISTRATION_TOKEN": REGISTRATION,
                   "CROSSLOGIC_DATA_DIR": d, "LOG_FORMAT": "json", "RUST_LOG": "warn",
                   "NODE_UNHEALTHY_AFTER": "1h", "NODE_DEAD_AFTER": "2h"}
            if redis:
                env["REDIS_URL"] = a.redis_url
            p = start([a.bin, "serve", "--listen", f"127.0.0.1:{port}", "--role", role], env=env, name=role)
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/readyz", timeout=120)
            return p, url

        main_p, main_url = serve("all", False)
        start([a.bin, "node-agent", "--control-url", main_url, "--engine-url", sim_url, "--advertise-url", sim_url,
               "--model", MODEL, "--region", "us-east"], env={"CROSSLOGIC_NODE_TOKEN": REGISTRATION}, name="agent")
        t = call("POST", main_url + "/admin/v1/tenants", {"name": "Bench", "email": "bench@bench.test"})
        e = call("POST", main_url + f"/admin/v1/tenants/{t['id']}/environments",
                 {"name": "prod", "quota_tokens_per_day": 10**15, "quota_tokens_per_minute": BIG,
                  "concurrency_limit": BIG, "rate_limit_requests_per_min": BIG})
        k = call("POST", main_url + f"/admin/v1/tenants/{t['id']}/keys",
                 {"environment_id": e["id"], "rate_limit_requests_per_min": BIG,
                  "rate_limit_tokens_per_min": BIG, "concurrency_limit": BIG})
        key = k["key_secret"]
        gw_p, gw_url = serve("gateway", False)
        gwr_p, gwr_url = serve("gateway", True)
        for url in (main_url, gw_url, gwr_url):
            deadline = time.time() + 30
            while MODEL not in json.dumps(call("GET", url + "/v1/models", token=key)):
                if time.time() > deadline:
                    sys.exit(f"{url}: {MODEL} is not served")
                time.sleep(0.2)

        if a.hold:
            print(f"direct {sim_url} (pid {sim.pid})\nrouter {router_url} (pid {router.pid})\n"
                  f"all {main_url} (pid {main_p.pid})\ngateway {gw_url} (pid {gw_p.pid})\n"
                  f"gateway+redis {gwr_url} (pid {gwr_p.pid})\nkey {key}\ndatabase {db}", flush=True)
            # Ctrl-C, or SIGTERM (a background job ignores SIGINT), ends it.
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return

        paths = [
            ("direct to the node", sim_url, sim, None, False),
            ("vllm-router round_robin", router_url, router, None, False),
            ("crosslogic all, in-process limits", main_url, main_p, key, True),
            ("crosslogic gateway, in-process", gw_url, gw_p, key, True),
            ("crosslogic gateway, Redis limits", gwr_url, gwr_p, key, True),
        ]
        rows = []
        for stream in (False, True):
            for conns in (1, 64):
                mode = "stream" if stream else "json"
                if only and f"{mode}:{conns}" not in only:
                    continue
                for name, url, proc, k_, metered in paths:
                    wrk(url, conns, a.duration, stream, k_, warmup=True)
                    before_rows = settled_rows(db) if metered else 0
                    # Every path starts with no vacuum or analyze owed on the
                    # usage table: autovacuum, due after ~20 % new rows, would
                    # otherwise land in whichever timed run crossed it (the
                    # last paths of a mode, as the table grows).
                    psql(db, "VACUUM (ANALYZE) usage_records")
                    cpu0, pg0, rd0 = cpu_seconds(proc.pid), cpu_seconds_of("postgres"), cpu_seconds_of("redis-server")
                    own0 = overhead_buckets(url) if metered else {}
                    recorder = None
                    if a.perf and metered:
                        os.makedirs(a.perf, exist_ok=True)
                        slug = re.sub(r"[^a-z0-9]+", "-", f"{mode}-{conns}-{name}".lower()).strip("-")
                        recorder = subprocess.Popen(["perf", "record", "-g", "-p", str(proc.pid), "-o",
                                                     os.path.join(a.perf, slug + ".perf"), "--", "sleep", str(a.duration)],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    r = wrk(url, conns, a.duration, stream, k_)
                    cpu = cpu_seconds(proc.pid) - cpu0
                    own = {}
                    if metered:
                        own1 = overhead_buckets(url)
                        own = {"own_p50": quantile_bound(own0, own1, 0.5), "own_p99": quantile_bound(own0, own1, 0.99)}
                    if recorder:
                        recorder.wait()
                    served = r["requests"] - r["non2xx"]
                    rows_ok = ""
                    if metered:
                        written = settled_rows(db) - before_rows
                        # wrk stops with up to `conns` requests in flight: the
                        # gateway meters them (as cancelled) but wrk does not
                        # count them.
                        rows_ok = f"{written - served:+d}"
                    # After the rows settled: the writers' last batches count.
                    pg = cpu_seconds_of("postgres") - pg0
                    rd = cpu_seconds_of("redis-server") - rd0
                    rows.append({"mode": mode, "conns": conns, "path": name, **r,
                                 "cpu_us": cpu / max(1, r["requests"]) * 1e6,
                                 "pg_us": pg / max(1, r["requests"]) * 1e6,
                                 "redis_us": rd / max(1, r["requests"]) * 1e6, "usage_vs_served": rows_ok, **own})
                    print(f"  {rows[-1]['mode']:6} c={conns:<3} {name:36} {r['rps']:9.0f} req/s", flush=True)
        print()
        print("rows−served: usage rows written during a timed run minus the 2xx answers wrk counted; wrk stops")
        print("with up to c requests in flight, which the gateway meters (as cancelled) and wrk does not count,")
        print("so 0 ≤ rows−served ≤ c means nothing was lost or counted twice. Streaming latencies are whole")
        print("streams (16 tokens at zero inter-token latency), not the time to the first byte. CPU µs/req is")
        print("the process in front (the node itself for direct); PG µs/req is every PostgreSQL process's")
        print("CPU during the run (the usage rows written), per request, and Redis µs/req the Redis server's")
        print("(the shared limits): on 2 shared cores both are throughput the proxy cannot have.")
        print()
        head = (f"{'mode':6} {'c':>3}  {'path':36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'Δp50':>8} {'Δp99':>8} "
                f"{'CPU µs/req':>10} {'PG µs/req':>9} {'Redis µs/req':>12} {'×router':>8} {'non-2xx':>8} {'rows−served':>11}")
        print(head)
        print("-" * len(head))
        for r in rows:
            direct = next(x for x in rows if x["mode"] == r["mode"] and x["conns"] == r["conns"] and x["path"].startswith("direct"))
            router_r = next(x for x in rows if x["mode"] == r["mode"] and x["conns"] == r["conns"] and x["path"].startswith("vllm"))
            print(f"{r['mode']:6} {r['conns']:>3}  {r['path']:36} {r['rps']:9.0f} {r['p50']:8.3f} {r['p99']:8.3f} "
                  f"{r['p50'] - direct['p50']:+8.3f} {r['p99'] - direct['p99']:+8.3f} {r['cpu_us']:10.1f} {r['pg_us']:9.1f} "
                  f"{r['redis_us']:12.1f} {r['rps'] / router_r['rps']:8.2f} {r['non2xx']:8d} {r['usage_vs_served']:>11}")
        print()
        print("The gateway's own time per request, as it reports it to an operator (the histogram")
        print("crosslogic_gateway_overhead_seconds: time in the gateway, the node's own time excluded; read")
        print("from /metrics before and after each timed run). The figures are the upper bounds of the")
        print("histogram buckets holding the 50th and 99th percentiles. Where the client's Δp99 is far above")
        print("them, the difference is time the gateway's threads were not running at all (see")
        print("docs/OPERATIONS.md, \"Reading the benchmark\").")
        print()
        head = f"{'mode':6} {'c':>3}  {'path':36} {'own p50 ≤ ms':>12} {'own p99 ≤ ms':>12}"
        print(head)
        print("-" * len(head))
        for r in rows:
            if "own_p50" in r:
                print(f"{r['mode']:6} {r['conns']:>3}  {r['path']:36} {r['own_p50']:12.2f} {r['own_p99']:12.2f}")
        if not only or "stream:1" in only:
            print()
            print(f"Streaming time to the first event, one request at a time ({a.ttfb} requests per path, after 200")
            print("warm-up ones; all paths interleaved in rounds of 100, so drift on this machine hits them alike):")
            print()
            head = f"{'path':36} {'p50 ms':>8} {'p99 ms':>8} {'Δp50':>8} {'Δp99':>8}"
            print(head)
            print("-" * len(head))
            samples = {name: [] for name, *_ in paths}
            for name, url, _, k_, _ in paths:
                ttfb(url, k_, 200)
            for _ in range(max(1, a.ttfb // 100)):
                for name, url, _, k_, _ in paths:
                    samples[name].append(ttfb(url, k_, 100))
            res = {}
            for name, got in samples.items():
                t = sorted(x for r in got for x in r)
                res[name] = (t[len(t) // 2], t[int(len(t) * 0.99)])
            d50, d99 = res[paths[0][0]]
            for name, (p50, p99) in res.items():
                print(f"{name:36} {p50:8.3f} {p99:8.3f} {p50 - d50:+8.3f} {p99 - d99:+8.3f}")
        bad = [r for r in rows if r["non2xx"] or r["errors"]]
        if bad:
            print("\nruns with failures:", [(r["path"], r["mode"], r["conns"], r["non2xx"], r["errors"]) for r in bad])
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if a.pin_db:
            pin("postgres", cpus)
        psql(a.database_url, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


if __name__ == "__main__":
    main()
