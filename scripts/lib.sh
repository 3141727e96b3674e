# Shared helpers for scripts/serve.sh and scripts/test.sh (sourced, not run).
# They install what is missing (apt-get, when root) or say exactly what to install.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root_or_say() {
  # as_root_or_say "<what>" pkg...: installs Debian packages or explains how.
  local what=$1; shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing $what: $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
    fi
  else
    die "$what is missing. Install it with: sudo apt-get install -y $*"
  fi
}

pg_bin_dir() {
  # The newest installed PostgreSQL server bin directory (holding initdb).
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  local i; i=$(command -v initdb 2>/dev/null) && { dirname "$(readlink -f "$i")"; return 0; }
  return 1
}

ensure_cargo() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust from https://rustup.rs"
  command -v cc >/dev/null || as_root_or_say "a C compiler" build-essential
}

ensure_postgres_installed() {
  pg_bin_dir >/dev/null || as_root_or_say "PostgreSQL" postgresql postgresql-client
  command -v psql >/dev/null || as_root_or_say "the PostgreSQL client" postgresql-client
}

ensure_redis_installed() {
  command -v redis-server >/dev/null || as_root_or_say "Redis" redis-server
}

run_as_pg() {
  # Runs a PostgreSQL server tool as the unprivileged 'postgres' user when root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_test_postgres() {
  # Exports CROSSLOGIC_TEST_DATABASE_URL: a server where tests may create databases.
  if [ -n "${CROSSLOGIC_TEST_DATABASE_URL:-}" ]; then
    psql "$CROSSLOGIC_TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null \
      || die "CROSSLOGIC_TEST_DATABASE_URL is set but not reachable"
    return
  fi
  local url=postgresql://postgres@127.0.0.1:5432/postgres
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
    local v; for v in $(ls /etc/postgresql 2>/dev/null); do
      log "starting PostgreSQL cluster $v/main"
      pg_ctlcluster --skip-systemctl-redirect "$v" main start >/dev/null 2>&1 || true
    done
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  if PGCONNECT_TIMEOUT=3 psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
    export CROSSLOGIC_TEST_DATABASE_URL=$url
    return
  fi
  # No usable server (not running, or no trust auth): a throwaway cluster.
  local bin dir=/var/tmp/crosslogic-test-pg port=55432
  bin=$(pg_bin_dir) || die "PostgreSQL server binaries not found"
  url=postgresql://postgres@127.0.0.1:$port/postgres
  if ! psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
    log "starting a throwaway PostgreSQL on 127.0.0.1:$port ($dir)"
    mkdir -p "$dir"; chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    [ -f "$dir/data/PG_VERSION" ] || run_as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    run_as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=300 -c fsync=off" start >/dev/null
  fi
  export CROSSLOGIC_TEST_DATABASE_URL=$url
}

ensure_test_redis() {
  # Exports CROSSLOGIC_TEST_REDIS_URL.
  if [ -n "${CROSSLOGIC_TEST_REDIS_URL:-}" ]; then return; fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /var/tmp --logfile /var/tmp/crosslogic-test-redis.log >/dev/null
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export CROSSLOGIC_TEST_REDIS_URL=redis://127.0.0.1:6379
}

ensure_test_python() {
  # Exports CROSSLOGIC_TEST_PYTHON: a Python with the official `openai` SDK,
  # the official `standardwebhooks` verifier, the `aiosmtpd` SMTP server, the
  # official `stripe` library (signs and verifies Stripe webhooks in tests),
  # `openapi-spec-validator` (checks /openapi.json) and Schemathesis (fuzzes
  # the API from it; pinned so a run is reproducible from its seed) and
  # Playwright (drives Debian's Chromium in the console's browser tests; it
  # never downloads a browser of its own).
  local venv=/var/tmp/crosslogic-venv
  local packages=(openai standardwebhooks aiosmtpd stripe openapi-spec-validator 'schemathesis==4.32.5' 'playwright==1.65.3')
  local check='import openai, standardwebhooks, aiosmtpd, stripe, openapi_spec_validator, schemathesis, playwright
from importlib.metadata import version
assert version("schemathesis") == "4.32.5" and version("playwright") == "1.65.3"'
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    export CROSSLOGIC_TEST_PYTHON=$venv/bin/python; return
  fi
  command -v python3 >/dev/null || as_root_or_say "Python 3" python3
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    as_root_or_say "Python venv support" python3-venv
    python3 -m venv "$venv" || die "cannot create a Python virtual environment in $venv"
  fi
  log "installing ${packages[*]} into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" \
    || die "pip install ${packages[*]} failed"
  export CROSSLOGIC_TEST_PYTHON=$venv/bin/python
}

ensure_test_chromium() {
  # Exports CROSSLOGIC_TEST_CHROMIUM: Debian's Chromium for the console's
  # browser tests (Playwright drives it; nothing is downloaded at test time).
  local c
  c=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$c" ]; then
    as_root_or_say "Chromium (browser tests)" chromium
    c=$(command -v chromium) || die "chromium was installed but is not on PATH"
  fi
  export CROSSLOGIC_TEST_CHROMIUM=$c
}

ensure_skypilot_python() {
  # Exports CROSSLOGIC_SKYPILOT_PYTHON: a Python with the real SkyPilot, used
  # to check that the task YAML we render loads in SkyPilot itself. Kept in
  # its own venv (it is large); when it cannot be installed the check is
  # skipped with a message, the rest of the suite still runs.
  local venv=/var/tmp/crosslogic-sky-venv
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sky, psycopg' 2>/dev/null; then
    export CROSSLOGIC_SKYPILOT_PYTHON=$venv/bin/python; return
  fi
  if ! { [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >/dev/null 2>&1; }; then
    log "warning: cannot create $venv; the SkyPilot YAML check will be skipped"; return
  fi
  log "installing SkyPilot into $venv (once; used to validate task YAML)"
  # psycopg: SkyPilot's driver for a PostgreSQL state database.
  if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'skypilot>=0.10' 'psycopg[binary]'; then
    export CROSSLOGIC_SKYPILOT_PYTHON=$venv/bin/python
  else
    log "warning: pip install skypilot failed; the SkyPilot YAML check will be skipped"
  fi
}

ensure_skypilot_api_server() {
  # Exports CROSSLOGIC_SKYPILOT_API_URL: a real SkyPilot API server on
  # loopback (its own HOME, so nothing of the user's ~/.sky is touched), for
  # the REST provisioner's round-trip test. Stopped by stop_skypilot_api_server
  # when this script started it.
  [ -n "${CROSSLOGIC_SKYPILOT_PYTHON:-}" ] || return 0
  local sky url=http://127.0.0.1:46580
  sky="$(dirname "$CROSSLOGIC_SKYPILOT_PYTHON")/sky"
  export CROSSLOGIC_SKY_HOME=/var/tmp/crosslogic-sky-home
  mkdir -p "$CROSSLOGIC_SKY_HOME"
  if ! "$CROSSLOGIC_SKYPILOT_PYTHON" -c "import urllib.request as u; u.urlopen('$url/api/health', timeout=3)" >/dev/null 2>&1; then
    log "starting a SkyPilot API server on $url"
    local out=/var/tmp/crosslogic-sky-api-start.log attempt
    for attempt in 1 2; do
      if HOME=$CROSSLOGIC_SKY_HOME timeout 120 "$sky" api start >"$out" 2>&1; then
        CROSSLOGIC_STARTED_SKY_API=1; break
      fi
      # A server being stopped may still hold the port: stop ours, retry once.
      HOME=$CROSSLOGIC_SKY_HOME timeout 60 "$sky" api stop >/dev/null 2>&1 || true
      sleep 3
    done
    if [ -z "${CROSSLOGIC_STARTED_SKY_API:-}" ]; then
      log "warning: the SkyPilot API server did not start (see $out); its round-trip test will be skipped"
      tail -n 5 "$out" >&2 || true
      return 0
    fi
  fi
  export CROSSLOGIC_SKYPILOT_API_URL=$url
}

stop_skypilot_api_server() {
  if [ -n "${CROSSLOGIC_STARTED_SKY_API:-}" ]; then
    HOME=$CROSSLOGIC_SKY_HOME "$(dirname "$CROSSLOGIC_SKYPILOT_PYTHON")/sky" api stop >/dev/null 2>&1 || true
  fi
}
