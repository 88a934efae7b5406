#!/usr/bin/env bash
# Makes sure a PostgreSQL server for the tests answers on 127.0.0.1:5432 with role "fabric" (password "fabric",
# allowed to create databases) owning database "fabric". Installs Debian's `postgresql` when no server is there, listens on 127.0.0.1 only and
# turns fsync off (test data only), starts the cluster with pg_ctlcluster and waits for it, bounded.
# Idempotent: run it as often as you like; a server that already answers is left as it is.
# Needs root to install or start the server. Logs to stderr; exits non-zero with the reason on failure.
set -euo pipefail

readonly HOST=127.0.0.1 PORT=5432 ROLE=fabric PASSWORD=fabric DATABASE=fabric
readonly START_TIMEOUT_S=60

log() { printf 'ensure-postgres: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -h "$HOST" -p "$PORT" -t 2 -q
  else
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
  fi
}

as_postgres() { runuser -u postgres -- "$@"; }

# psql as the superuser over the cluster's local socket; prints the single value of the query.
superuser_query() { as_postgres psql -p "$PORT" -X -v ON_ERROR_STOP=1 -tAc "$1"; }

install_server() {
  [ "$(id -u)" -eq 0 ] || fail "PostgreSQL is not installed and this is not root: install 'postgresql' or run as root"
  log "installing Debian package 'postgresql' (apt-get update, then install)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || fail "apt-get update failed"
  apt-get install -y -qq postgresql >&2 || fail "apt-get install postgresql failed"
}

# Prints "<version> <cluster>" of the cluster to use, creating 'main' of the newest installed version if none exists.
find_cluster() {
  local line
  line="$(pg_lsclusters -h 2>/dev/null | awk -v port="$PORT" '$3 == port { print $1, $2; exit }')"
  if [ -z "$line" ]; then line="$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 { print $1, $2 }')"; fi
  if [ -z "$line" ]; then
    local version
    version="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)"
    [ -n "$version" ] || fail "no PostgreSQL server binaries under /usr/lib/postgresql"
    log "creating cluster $version/main"
    pg_createcluster "$version" main >&2 || fail "pg_createcluster $version main failed"
    line="$version main"
  fi
  printf '%s\n' "$line"
}

configure_cluster() {
  local version="$1" cluster="$2" conf
  conf="/etc/postgresql/$version/$cluster/conf.d/90-fabric-tests.conf"
  local wanted
  wanted="$(printf '%s\n' \
    "# Written by Fabric's scripts/ensure-postgres.sh: a local server for tests only." \
    "listen_addresses = '$HOST'" \
    "port = $PORT" \
    "fsync = off" \
    "synchronous_commit = off" \
    "full_page_writes = off")"
  if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
    log "writing $conf (listen on $HOST:$PORT only, fsync off)"
    printf '%s\n' "$wanted" > "$conf" || fail "cannot write $conf"
    chown postgres:postgres "$conf" 2>/dev/null || true
  fi
}

start_server() {
  [ "$(id -u)" -eq 0 ] || fail "no PostgreSQL server answers on $HOST:$PORT and this is not root: start one or run as root"
  command -v pg_ctlcluster >/dev/null 2>&1 || install_server
  local found version cluster
  found="$(find_cluster)"
  read -r version cluster <<< "$found"
  configure_cluster "$version" "$cluster"
  if pg_ctlcluster "$version" "$cluster" status >/dev/null 2>&1; then
    log "cluster $version/$cluster is running but does not answer on $HOST:$PORT: restarting it"
    pg_ctlcluster "$version" "$cluster" restart >&2 || fail "pg_ctlcluster $version $cluster restart failed (see /var/log/postgresql/)"
  else
    log "starting cluster $version/$cluster"
    pg_ctlcluster "$version" "$cluster" start >&2 || fail "pg_ctlcluster $version $cluster start failed (see /var/log/postgresql/)"
  fi
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until answers; do
    [ "$SECONDS" -lt "$deadline" ] || fail "PostgreSQL did not answer on $HOST:$PORT within ${START_TIMEOUT_S}s (see /var/log/postgresql/)"
    sleep 0.5
  done
  log "server answers on $HOST:$PORT"
}

ensure_role_and_database() {
  if ! id postgres >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    log "not root or no 'postgres' user: not creating role/database, only checking them"
    return 0
  fi
  if [ "$(superuser_query "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    log "creating role $ROLE"
    superuser_query "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >/dev/null || fail "cannot create role $ROLE"
  fi
  # Cluster tests give each fixture a database of its own (created and dropped by the tests), so nothing one test
  # class stored is recovered by the next one's nodes.
  if [ "$(superuser_query "SELECT rolcreatedb FROM pg_roles WHERE rolname = '$ROLE'")" != t ]; then
    log "letting role $ROLE create databases"
    superuser_query "ALTER ROLE $ROLE CREATEDB" >/dev/null || fail "cannot let role $ROLE create databases"
  fi
  if [ "$(superuser_query "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
    log "creating database $DATABASE owned by $ROLE"
    superuser_query "CREATE DATABASE $DATABASE OWNER $ROLE" >/dev/null || fail "cannot create database $DATABASE"
  fi
}

check_login() {
  command -v psql >/dev/null 2>&1 || { log "no psql client: skipping the login check"; return 0; }
  PGPASSWORD="$PASSWORD" PGCONNECT_TIMEOUT=5 psql -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DATABASE" -X -tAc 'SELECT 1' >/dev/null \
    || fail "cannot log in to $HOST:$PORT/$DATABASE as $ROLE"
}

if answers; then
  log "a server already answers on $HOST:$PORT"
else
  start_server
fi
ensure_role_and_database
check_login
log "ready: Host=$HOST;Port=$PORT;Username=$ROLE;Database=$DATABASE"
