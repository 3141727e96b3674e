#!/usr/bin/env bash
# =============================================================================
# migrate.sh — apply, roll back or inspect the CrossLogic schema with psql.
#
#   ./migrate.sh [up|down|status] [--yes] [--repair]   (default: up)
#
# up      apply every pending database/schemas/NN_*.sql in order, each in one
#         transaction together with its schema_migrations row
# down    run database/rollback/NN_*.down.sql newest first, then drop
#         schema_migrations — DELETES ALL DATA; asks for the database name
#         unless --yes or MIGRATE_ASSUME_YES=1
# status  applied and pending migrations, every table's exact row count, and
#         the database size
#
# Connection: DATABASE_URL, or DB_HOST (localhost), DB_PORT (5432), DB_USER
# (crosslogic), DB_PASSWORD, DB_NAME (crosslogic_iaas), DB_SSL_MODE (prefer).
#
# Shares the schema_migrations table and the advisory lock key 7241101 with
# `crosslogic db migrate`, so both tools see the same state and never apply a
# file at the same time.
# =============================================================================
set -euo pipefail

readonly LOCK_KEY=7241101
readonly BOOKKEEPING_SQL='CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL DEFAULT 0);'

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
readonly SCRIPT_DIR
readonly SCHEMA_DIR="$SCRIPT_DIR/schemas"
readonly ROLLBACK_DIR="$SCRIPT_DIR/rollback"

# --- output helpers ----------------------------------------------------------
die()  { echo "migrate.sh: error: $*" >&2; exit 1; }
warn() { echo "migrate.sh: $*" >&2; }

usage() {
    cat <<'EOF'
Usage: migrate.sh [up|down|status] [--yes] [--repair]

  up       apply pending migrations from database/schemas (default); refuses
           when the database lacks objects its applied migrations created
           (schema drift) unless --repair, which re-applies those files first
  down     reverse all migrations (drops every table and its data); asks you
           to type the database name unless --yes or MIGRATE_ASSUME_YES=1
  status   applied/pending migrations, table row counts, database size

Connection: DATABASE_URL=postgresql://user:pass@host:5432/db
        or  DB_PASSWORD (+ DB_HOST, DB_PORT, DB_USER, DB_NAME, DB_SSL_MODE)
EOF
}

# --- arguments ---------------------------------------------------------------
action=""
assume_yes=0
repair=0
for arg in "$@"; do
    case "$arg" in
        up|down|status)
            [[ -z "$action" ]] || { warn "only one action allowed (got '$action' and '$arg')"; usage >&2; exit 2; }
            action="$arg" ;;
        -y|--yes) assume_yes=1 ;;
        --repair) repair=1 ;;
        -h|--help|help) usage; exit 0 ;;
        *) warn "unknown argument: $arg"; usage >&2; exit 2 ;;
    esac
done
action="${action:-up}"
[[ "${MIGRATE_ASSUME_YES:-}" == "1" ]] && assume_yes=1

# --- connection --------------------------------------------------------------
# The password only ever travels in PGPASSWORD (or inside DATABASE_URL); it is
# never printed.
if [[ -n "${DATABASE_URL:-}" ]]; then
    DB_TARGET="$DATABASE_URL"
    [[ -n "${DB_PASSWORD:-}" ]] && export PGPASSWORD="$DB_PASSWORD"   # used if the URL has none
    [[ -n "${DB_SSL_MODE:-}" ]] && export PGSSLMODE="$DB_SSL_MODE"     # the URL's sslmode wins
elif [[ -n "${DB_PASSWORD:-}" ]]; then
    export PGHOST="${DB_HOST:-localhost}"
    export PGPORT="${DB_PORT:-5432}"
    export PGUSER="${DB_USER:-crosslogic}"
    export PGSSLMODE="${DB_SSL_MODE:-prefer}"
    export PGPASSWORD="$DB_PASSWORD"
    DB_TARGET="${DB_NAME:-crosslogic_iaas}"
else
    cat >&2 <<'EOF'
migrate.sh: error: no database connection configured. Set either
  DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/DBNAME
or
  DB_PASSWORD=...   (optional: DB_HOST=localhost DB_PORT=5432 DB_USER=crosslogic
                     DB_NAME=crosslogic_iaas DB_SSL_MODE=prefer)
EOF
    exit 2
fi
export PGAPPNAME="crosslogic-migrate"

if ! command -v psql >/dev/null 2>&1; then
    warn "psql not found; install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client)"
    exit 2
fi

# psql with no ~/.psqlrc, quiet, stopping at the first error.
pg()     { psql -X -q -v ON_ERROR_STOP=1 -d "$DB_TARGET" "$@"; }
# One value / tab-separated rows, no headers.
pg_val() { pg -At -F $'\t' -c "$1"; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "neither sha256sum nor shasum found"
    fi
}

# Whether checksum $2 is migration $1's file: its sum now, or an earlier one
# listed in superseded.tsv (the one list, shared with the crosslogic binary).
sum_accepted() {
    local i; i="$(mig_index "$1")"
    [[ -n "$i" && "$2" == "${MIG_SUM[$i]}" ]] && return 0
    [[ -f "$SCRIPT_DIR/superseded.tsv" ]] || return 1
    local v sum why
    while IFS=$'\t' read -r v sum why; do
        [[ "$v" == \#* || -z "$v" ]] && continue
        [[ "$v" == "$1" && "$sum" == "$2" ]] && return 0
    done < "$SCRIPT_DIR/superseded.tsv"
    return 1
}

# --- migration files ---------------------------------------------------------
# MIG_VERSION[i], MIG_NAME[i], MIG_FILE[i], MIG_SUM[i], sorted by version.
MIG_VERSION=(); MIG_NAME=(); MIG_FILE=(); MIG_SUM=()
load_migrations() {
    local f base name v
    local -a lines=()
    shopt -s nullglob
    for f in "$SCHEMA_DIR"/[0-9]*.sql; do
        base="${f##*/}"; name="${base%.sql}"
        [[ "$name" =~ ^([0-9]+)_[A-Za-z0-9_]+$ ]] \
            || die "bad migration file name: schemas/$base (expected NN_name.sql)"
        v=$((10#${BASH_REMATCH[1]}))
        lines+=("$v"$'\t'"$name")
    done
    shopt -u nullglob
    (( ${#lines[@]} > 0 )) || die "no migration files found in $SCHEMA_DIR"
    while IFS=$'\t' read -r v name; do
        if (( ${#MIG_VERSION[@]} > 0 )) && [[ "${MIG_VERSION[-1]}" == "$v" ]]; then
            die "two migration files share version $v: ${MIG_NAME[-1]}.sql and $name.sql"
        fi
        MIG_VERSION+=("$v"); MIG_NAME+=("$name")
        MIG_FILE+=("$SCHEMA_DIR/$name.sql"); MIG_SUM+=("$(sha256_of "$SCHEMA_DIR/$name.sql")")
    done < <(printf '%s\n' "${lines[@]}" | sort -n -k1,1)
}

# Index of a version in MIG_VERSION, or empty.
mig_index() {
    local i
    for i in "${!MIG_VERSION[@]}"; do
        [[ "${MIG_VERSION[$i]}" == "$1" ]] && { echo "$i"; return 0; }
    done
    return 0
}

# --- database checks ---------------------------------------------------------
DB_NAME_ACTUAL=""
connect() {
    local info
    if ! info="$(pg_val "SELECT current_database(), current_user, coalesce(host(inet_server_addr()), 'local socket'), current_setting('server_version'), current_setting('server_version_num')::int >= 140000")"; then
        die "cannot connect to the database (see the psql message above)"
    fi
    local db user host ver ok
    IFS=$'\t' read -r db user host ver ok <<<"$info"
    DB_NAME_ACTUAL="$db"
    echo "Database: $db (user $user, server $host, PostgreSQL $ver)"
    [[ "$ok" == "t" ]] || die "PostgreSQL $ver is too old; 14 or newer is required"
}

has_bookkeeping() {
    [[ "$(pg_val "SELECT to_regclass('public.schema_migrations') IS NOT NULL")" == "t" ]]
}

# Rows "version<TAB>name<TAB>checksum<TAB>applied_at<TAB>execution_ms".
recorded_rows() {
    has_bookkeeping || return 0
    pg_val "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', execution_ms FROM schema_migrations ORDER BY version"
}

# Explains "permission denied for schema public" (PostgreSQL 15+ after the
# seed's database-level GRANT) and prints the fix.
schema_permission_hint() {
    [[ "$1" == *"permission denied for schema"* ]] || return 0
    local who db
    who="$(pg_val "SELECT current_user" 2>/dev/null || echo "<user>")"
    db="$(pg_val "SELECT current_database()" 2>/dev/null || echo "<database>")"
    cat >&2 <<HINT
migrate.sh: $who may not create tables in schema public of $db (SQLSTATE 42501):
  since PostgreSQL 15, GRANT ALL PRIVILEGES ON DATABASE no longer allows it.
  Fix it once, as a superuser:   ALTER DATABASE $db OWNER TO $who;
  (or, connected to $db:         GRANT CREATE ON SCHEMA public TO $who;)
  or create the database with:   crosslogic db create --owner $who --name $db
HINT
}

# --- drift -------------------------------------------------------------------
# Objects (kind, table, name, from version) that the applied migrations
# create according to objects.tsv and the database lacks, one per line.
# $1: the applied versions, comma-separated.
drift_rows() {
    local versions="$1" values
    [[ -n "$versions" && -f "$SCRIPT_DIR/objects.tsv" ]] || return 0
    values="$(awk -F'\t' -v vs=",$versions," '
        !/^#/ && NF >= 4 && index(vs, "," $1 ",") {
            for (i = 2; i <= 4; i++) gsub("\047", "\047\047", $i)
            printf "%s(%s, \047%s\047, \047%s\047, \047%s\047)", (n++ ? ", " : ""), $1, $2, $3, $4
        }' "$SCRIPT_DIR/objects.tsv")"
    [[ -n "$values" ]] || return 0
    pg_val "WITH expected(version, kind, tbl, name) AS (VALUES $values),
                 t AS (SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')),
                 present(kind, tbl, name) AS (
                   SELECT 'table', '', t.relname::text FROM t
                   UNION ALL SELECT 'column', t.relname::text, a.attname::text FROM t JOIN pg_attribute a
                          ON a.attrelid = t.oid WHERE a.attnum > 0 AND NOT a.attisdropped
                   UNION ALL SELECT 'constraint', t.relname::text, con.conname::text FROM t JOIN pg_constraint con
                          ON con.conrelid = t.oid
                   UNION ALL SELECT 'index', t.relname::text, i.relname::text FROM t JOIN pg_index x
                          ON x.indrelid = t.oid JOIN pg_class i ON i.oid = x.indexrelid
                   UNION ALL SELECT 'trigger', t.relname::text, tg.tgname::text FROM t JOIN pg_trigger tg
                          ON tg.tgrelid = t.oid WHERE NOT tg.tgisinternal
                   UNION ALL SELECT 'function', '', p.proname::text FROM pg_proc p JOIN pg_namespace n
                          ON n.oid = p.pronamespace WHERE n.nspname = 'public')
            SELECT e.kind, e.tbl, e.name, e.version FROM expected e
             WHERE NOT EXISTS (SELECT 1 FROM present p WHERE p.kind = e.kind AND p.tbl = e.tbl AND p.name = e.name)
             ORDER BY e.version, e.kind, e.tbl, e.name"
}

# Prints drift rows as "  kind table.name (from NN_file.sql)".
print_drift() {
    local kind tbl name v i
    while IFS=$'\t' read -r kind tbl name v; do
        [[ -n "$kind" ]] || continue
        i="$(mig_index "$v")"
        printf '  %s %s%s (from %s.sql)\n' "$kind" "${tbl:+$tbl.}" "$name" "${MIG_NAME[$i]:-migration $v}"
    done <<<"$1"
}

applied_versions() {
    has_bookkeeping || return 0
    pg_val "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"
}

# --- up ----------------------------------------------------------------------
cmd_up() {
    load_migrations
    connect

    local err
    if ! err="$(pg -1 -c "SET client_min_messages = warning" -c "SELECT pg_advisory_xact_lock($LOCK_KEY)" -c "$BOOKKEEPING_SQL" 2>&1 >/dev/null)"; then
        echo "$err" >&2
        schema_permission_hint "$err"
        die "cannot create schema_migrations"
    fi

    # Refuse before changing anything if an applied file was edited or the
    # database knows a migration this checkout does not.
    local v name sum at ms i
    declare -A recorded=()
    while IFS=$'\t' read -r v name sum at ms; do
        [[ -n "$v" ]] || continue
        i="$(mig_index "$v")"
        [[ -n "$i" ]] || die "the database has migration $v ($name) but there is no schemas/$name.sql here; update this checkout"
        if ! sum_accepted "$v" "$sum"; then
            die "checksum mismatch for database/schemas/${MIG_NAME[$i]}.sql: recorded $sum when applied, the file now hashes to ${MIG_SUM[$i]}; applied migrations must not change — put the change in a new numbered file"
        fi
        recorded[$v]=1
    done < <(recorded_rows)

    # Refuse (or, with --repair, re-apply the affected files) when objects
    # the applied migrations created are missing.
    local drift versions
    versions="$(applied_versions)"
    drift="$(drift_rows "$versions")"
    if [[ -n "$drift" ]]; then
        echo "Schema drift: the database lacks what its applied migrations created:" >&2
        print_drift "$drift" >&2
        (( repair )) || die "refusing to continue; repair with: migrate.sh up --repair (or crosslogic db migrate --repair)"
        local dv
        for dv in $(cut -f4 <<<"$drift" | sort -un); do
            i="$(mig_index "$dv")"
            echo "  ${MIG_NAME[$i]}: re-applying (repair)"
            pg -1 -c "SET client_min_messages = warning" -c "SELECT pg_advisory_xact_lock($LOCK_KEY)" -f "${MIG_FILE[$i]}" >/dev/null \
                || die "re-applying database/schemas/${MIG_NAME[$i]}.sql failed; its transaction was rolled back"
        done
        drift="$(drift_rows "$versions")"
        if [[ -n "$drift" ]]; then
            echo "Still missing after re-applying (indexes, constraints and triggers the files cannot re-create):" >&2
            print_drift "$drift" >&2
            die "run crosslogic db migrate --repair (it restores them from their recorded definitions) or restore from a backup"
        fi
        echo "  repaired"
    fi

    local applied_now=0 skipped=0
    for i in "${!MIG_VERSION[@]}"; do
        v="${MIG_VERSION[$i]}"; name="${MIG_NAME[$i]}"
        if [[ -n "${recorded[$v]:-}" ]]; then
            echo "  $name: already applied"
            skipped=$((skipped + 1))
            continue
        fi
        echo "  $name: applying..."
        # One transaction: lock, re-check (another process may have applied it
        # while we waited), run the file, record it with its duration.
        local out
        if ! out="$(pg -1 -v lock="$LOCK_KEY" -v v="$v" -v name="$name" -v sum="${MIG_SUM[$i]}" -v file="${MIG_FILE[$i]}" -f - <<'SQL'
SET client_min_messages = warning;
SELECT pg_advisory_xact_lock(:lock) AS migrate_lock \gset
SELECT count(*) > 0 AS already, coalesce(bool_and(checksum = :'sum'), true) AS same_sum
  FROM schema_migrations WHERE version = :v \gset
\if :already
  \if :same_sum
    \echo MIGRATE_APPLIED_MEANWHILE
  \else
    DO $$ BEGIN RAISE EXCEPTION 'checksum mismatch: another process recorded a different version of this file'; END $$;
  \endif
\else
  SELECT clock_timestamp() AS started_at \gset
  \i :file
  INSERT INTO schema_migrations (version, name, checksum, execution_ms)
  VALUES (:v, :'name', :'sum',
          least(2147483647, round(extract(epoch FROM clock_timestamp() - :'started_at'::timestamptz) * 1000))::integer);
\endif
SQL
        )"; then
            die "applying database/schemas/$name.sql failed; its transaction was rolled back"
        fi
        [[ -z "$out" || "$out" == MIGRATE_APPLIED_MEANWHILE ]] || echo "$out"
        if [[ "$out" == *MIGRATE_APPLIED_MEANWHILE* ]]; then
            echo "  $name: already applied (by another process meanwhile)"
            skipped=$((skipped + 1))
            continue
        fi
        ms="$(pg_val "SELECT execution_ms FROM schema_migrations WHERE version = $v")"
        echo "  $name: done (${ms} ms)"
        applied_now=$((applied_now + 1))
    done
    echo "Up to date: $applied_now applied now, $skipped already applied."
}

# --- down --------------------------------------------------------------------
cmd_down() {
    load_migrations
    # Every forward file must have its reverse before anything is dropped.
    local i name f
    local -a downs=()
    for (( i = ${#MIG_VERSION[@]} - 1; i >= 0; i-- )); do
        name="${MIG_NAME[$i]}"; f="$ROLLBACK_DIR/$name.down.sql"
        [[ -f "$f" ]] || die "missing rollback script database/rollback/$name.down.sql"
        downs+=("$i")
    done

    connect
    echo "This drops every CrossLogic table, function and all their data in database '$DB_NAME_ACTUAL'."
    if (( assume_yes )); then
        echo "Confirmed by --yes / MIGRATE_ASSUME_YES=1."
    elif [[ -t 0 ]]; then
        local answer=""
        read -r -p "Type the database name to confirm: " answer || true
        [[ "$answer" == "$DB_NAME_ACTUAL" ]] || die "confirmation did not match '$DB_NAME_ACTUAL'; nothing was changed"
    else
        die "refusing to roll back without confirmation: no terminal to ask on; pass --yes or set MIGRATE_ASSUME_YES=1"
    fi

    for i in "${downs[@]}"; do
        name="${MIG_NAME[$i]}"
        echo "  $name: reverting..."
        if ! pg -1 -v lock="$LOCK_KEY" -v v="${MIG_VERSION[$i]}" -v file="$ROLLBACK_DIR/$name.down.sql" -f - <<'SQL'
SET client_min_messages = warning;
SELECT pg_advisory_xact_lock(:lock) AS migrate_lock \gset
\i :file
SELECT to_regclass('public.schema_migrations') IS NOT NULL AS has_bookkeeping \gset
\if :has_bookkeeping
  DELETE FROM schema_migrations WHERE version = :v;
\endif
SQL
        then
            die "reverting database/rollback/$name.down.sql failed; its transaction was rolled back"
        fi
        echo "  $name: reverted"
    done
    pg -1 -c "SET client_min_messages = warning" -c "SELECT pg_advisory_xact_lock($LOCK_KEY)" \
          -c "DROP TABLE IF EXISTS schema_migrations" >/dev/null \
        || die "cannot drop schema_migrations"
    echo "Rolled back: all migrations reverted, schema_migrations dropped."
}

# --- status ------------------------------------------------------------------
cmd_status() {
    load_migrations
    connect

    local v name sum at ms i state
    declare -A recorded=()
    echo
    echo "Applied migrations:"
    local any=0
    while IFS=$'\t' read -r v name sum at ms; do
        [[ -n "$v" ]] || continue
        any=1; recorded[$v]=1
        i="$(mig_index "$v")"
        if [[ -z "$i" ]]; then state="NO FILE IN THIS CHECKOUT"
        elif ! sum_accepted "$v" "$sum"; then state="CHECKSUM MISMATCH (file edited after it was applied)"
        else state="ok"
        fi
        printf '  %3s  %-24s %s  %6s ms  %s\n' "$v" "$name" "$at" "$ms" "$state"
    done < <(recorded_rows)
    (( any )) || echo "  (none)"

    echo "Pending migrations:"
    any=0
    for i in "${!MIG_VERSION[@]}"; do
        [[ -n "${recorded[${MIG_VERSION[$i]}]:-}" ]] && continue
        any=1
        printf '  %3s  %s\n' "${MIG_VERSION[$i]}" "schemas/${MIG_NAME[$i]}.sql"
    done
    (( any )) || echo "  (none)"

    echo
    local drift
    drift="$(drift_rows "$(applied_versions)")"
    if [[ -z "$drift" ]]; then
        echo "Schema drift: none"
    else
        echo "SCHEMA DRIFT: the database lacks what its applied migrations created:"
        print_drift "$drift"
        echo "  repair with: migrate.sh up --repair"
    fi

    echo
    echo "Tables (exact row counts):"
    local rows
    rows="$(pg_val "SELECT c.relname,
                           (xpath('/row/n/text()',
                                  query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname),
                                               false, true, '')))[1]::text
                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                     ORDER BY c.relname")" || die "cannot count table rows"
    if [[ -z "$rows" ]]; then
        echo "  (no tables)"
    else
        while IFS=$'\t' read -r name v; do
            printf '  %-28s %12s\n' "$name" "$v"
        done <<<"$rows"
    fi

    echo
    echo "Database size: $(pg_val "SELECT pg_size_pretty(pg_database_size(current_database()))")"
}

case "$action" in
    up)     cmd_up ;;
    down)   cmd_down ;;
    status) cmd_status ;;
esac
