#!/usr/bin/env bash
# Side-by-side benchmark of the real binary (loopback only, bounded in time):
# a zero-latency engine simulator driven directly, through vllm-router
# (round_robin, from PyPI in a throwaway virtualenv) and through crosslogic
# with every feature on (auth, four limit layers, metering) — as one
# process (`--role all`, in-process limits) and as gateway-only processes
# (in-process and Redis limits) — by wrk at 1 and 64 connections,
# non-streaming and streaming. Prints req/s, p50/p99, the difference to
# direct, CPU per request of the process in front, the ratio to
# vllm-router, and checks that usage rows equal the requests served.
#
#   ./scripts/bench.sh                    # BENCH_DURATION=8 (seconds per run)
#
# Needs nothing else running on the machine (2 cores are shared by the
# load generator, the proxy, the simulator and PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_cargo
ensure_postgres_installed
ensure_redis_installed
command -v wrk >/dev/null || as_root_or_say "wrk (the load generator)" wrk
ensure_test_postgres
ensure_test_redis

venv=/var/tmp/crosslogic-bench-venv
if ! "$venv/bin/vllm-router" --help >/dev/null 2>&1; then
  python3 -m venv "$venv" >/dev/null 2>&1 || { as_root_or_say "Python venv support" python3-venv; python3 -m venv "$venv"; }
  log "installing vllm-router==0.1.17 into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'vllm-router==0.1.17' \
    || die "pip install vllm-router failed"
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/crosslogic-target}
log "building crosslogic (release)"
cargo build --release --quiet -p crosslogic-cli
exec python3 scripts/bench.py \
  --bin "$CARGO_TARGET_DIR/release/crosslogic" \
  --router "$venv/bin/vllm-router" \
  --database-url "$CROSSLOGIC_TEST_DATABASE_URL" \
  --redis-url "$CROSSLOGIC_TEST_REDIS_URL" \
  --duration "${BENCH_DURATION:-8}" "$@"
