#!/usr/bin/env bash
# The whole test suite: formatting and lint gate, then every test against
# real PostgreSQL and Redis (started here when they are not running).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_cargo
ensure_postgres_installed
ensure_redis_installed
ensure_test_postgres
ensure_test_redis
ensure_test_python
ensure_test_chromium
ensure_skypilot_python
ensure_skypilot_api_server
trap stop_skypilot_api_server EXIT
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/crosslogic-target}
export PATH="$(pg_bin_dir):$PATH"   # initdb/postgres for the embedded-database tests

log "dropping databases left by earlier interrupted runs"
psql "$CROSSLOGIC_TEST_DATABASE_URL" -Atqc \
  "select 'DROP DATABASE IF EXISTS \"' || datname || '\" WITH (FORCE);' from pg_database where datname like 'clt\_%'" \
  | psql "$CROSSLOGIC_TEST_DATABASE_URL" -q >/dev/null 2>&1 || true

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "tests (PostgreSQL: ${CROSSLOGIC_TEST_DATABASE_URL}, Redis: ${CROSSLOGIC_TEST_REDIS_URL})"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
