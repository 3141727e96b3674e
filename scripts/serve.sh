#!/usr/bin/env bash
# Runs the platform on this machine: builds crosslogic and starts
# `crosslogic serve`. With no DATABASE_URL/DB_HOST it runs a private
# PostgreSQL from the local installation in ./.crosslogic (installed here
# with apt-get when missing and we are root) in demo mode: a demo tenant, a
# key and local simulator nodes for a chat and an embedding model, and a
# banner saying how to call them. Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_cargo
demo=()
if [ -z "${DATABASE_URL:-}" ] && [ -z "${DB_HOST:-}" ]; then
  demo=(--demo)
  ensure_postgres_installed
  export PATH="$(pg_bin_dir):$PATH"
  # As root, PostgreSQL runs as 'postgres', which must reach the data directory.
  if [ "$(id -u)" = 0 ] && [ -z "${CROSSLOGIC_DATA_DIR:-}" ] && ! runuser -u postgres -- test -x "$PWD" 2>/dev/null; then
    export CROSSLOGIC_DATA_DIR=/var/lib/crosslogic/$(basename "$PWD")
    mkdir -p "$CROSSLOGIC_DATA_DIR"
    log "running as root and $PWD is private: data directory is $CROSSLOGIC_DATA_DIR"
  fi
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/crosslogic-target}
cargo build --release --quiet -p crosslogic-cli
log "starting crosslogic (the banner with your API key follows once the demo nodes serve)"
exec "$CARGO_TARGET_DIR/release/crosslogic" serve "${demo[@]}" "$@"
