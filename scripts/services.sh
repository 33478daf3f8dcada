#!/usr/bin/env bash
# scripts/services.sh - start/stop the real backing services used by the test suite
# (PostgreSQL, Redis, Orthanc + DICOMweb + GDCM), bound to 127.0.0.1, all data in DIR; also installs
# nginx and openssl for the TLS reverse-proxy test, which starts its own nginx; dicom3tools (dciodvfy).
#
# Usage:
#   bash scripts/services.sh start  DIR   # install missing packages (apt-get), start all, wait until ready
#   bash scripts/services.sh stop   DIR   # stop all three; idempotent, never fails
#   bash scripts/services.sh status DIR   # show what is running for DIR
#   source DIR/env                        # DATABASE_URL, CELERY_BROKER_URL, REDIS_URL, ORTHANC_URL,
#                                         # ORTHANC_DICOMWEB_URL, SERVICES_DIR
#
# Typical CI use:
#   d=$(mktemp -d); bash scripts/services.sh start "$d"; source "$d/env"
#   ... run tests ...; bash scripts/services.sh stop "$d"
#
# Ports (env overrides): PG_PORT=55432 REDIS_PORT=56379 ORTHANC_HTTP_PORT=58042 ORTHANC_DICOM_PORT=54242
# Other knobs: SERVICES_FRESH=1 wipes DIR's existing data before start (default: a second
#              `start` on the same DIR stops what runs there and restarts it, keeping the data).
#              SERVICES_TIMEOUT=60 seconds to wait for each service.
# Notes:
#   * Postgres refuses to run as root, so as root it runs as the `postgres` OS user (runuser);
#     DIR gets a+x so that user can reach DIR/pg. Non-root users run it as themselves.
#   * Orthanc 1.10 has no bind-address option: it listens on all interfaces but, with
#     RemoteAccessAllowed=false, refuses non-local HTTP clients.
#   * Role/database: medlabel/medlabel (password auth, scram-sha-256, over TCP 127.0.0.1).
set -euo pipefail

PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
ORTHANC_HTTP_PORT="${ORTHANC_HTTP_PORT:-58042}"
ORTHANC_DICOM_PORT="${ORTHANC_DICOM_PORT:-54242}"
TIMEOUT="${SERVICES_TIMEOUT:-60}"
DB_NAME=medlabel
DB_USER=medlabel
DB_PASSWORD=medlabel
REDIS_BIN=/usr/bin/redis-server
REDIS_CLI=/usr/bin/redis-cli
ORTHANC_BIN=/usr/sbin/Orthanc
NGINX_BIN=/usr/sbin/nginx
ORTHANC_PLUGIN_DIR=/usr/share/orthanc/plugins
ORTHANC_PLUGINS=("$ORTHANC_PLUGIN_DIR/libOrthancDicomWeb.so" "$ORTHANC_PLUGIN_DIR/libOrthancGdcm.so")
# Remembers which DIR owns which port, so a clash with another run can be explained.
REGISTRY="${TMPDIR:-/tmp}/medlabel-services-ports"

log() { echo "[services] $*" >&2; }
die() { echo "[services] ERROR: $*" >&2; exit 1; }

usage() {
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
pg_bindir() {
    local p
    p=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$p" ]] && dirname "$p"
}

# Run a command as the PostgreSQL cluster owner.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Alive = exists and is not a zombie (an exited daemon reparented to a lazy PID 1, e.g. in a
# container, can stay a zombie for a while and still passes `kill -0`).
pid_alive() {
    [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ "${stat:0:1}" != Z ]]
}

# pid_is PID COMM: pid alive and its /proc comm is COMM (guards against recycled pids).
pid_is() {
    pid_alive "$1" || return 1
    [[ "$(cat "/proc/$1/comm" 2>/dev/null || true)" == "$2" ]]
}

read_pidfile() { [[ -s "$1" ]] && head -n 1 "$1" | tr -dc '0-9' || true; }

tail_log() {
    local f=$1
    if [[ -f "$f" ]]; then
        echo "[services] ---- last lines of $f ----" >&2
        tail -n 40 "$f" | sed 's/^/[services] | /' >&2
        echo "[services] ----" >&2
    else
        echo "[services] (no log file $f)" >&2
    fi
}

# wait_until NAME LOGFILE ALIVE_CMD READY_CMD...
# ALIVE_CMD is eval'd; if it fails the service died and we stop waiting early.
wait_until() {
    local name=$1 logf=$2 alive=$3
    shift 3
    local start=$SECONDS
    while ((SECONDS - start < TIMEOUT)); do
        if "$@" >/dev/null 2>&1; then
            log "$name is ready ($((SECONDS - start)) s)"
            return 0
        fi
        if ! eval "$alive"; then
            # give it one last chance (it may just have daemonized)
            sleep 0.5
            if "$@" >/dev/null 2>&1; then log "$name is ready"; return 0; fi
            if ! eval "$alive"; then
                tail_log "$logf"
                die "$name died during startup (see $logf)"
            fi
        fi
        sleep 0.25
    done
    tail_log "$logf"
    die "$name not ready after ${TIMEOUT}s (see $logf)"
}


registry_claim() {   # registry_claim PORT
    mkdir -p "$REGISTRY" 2>/dev/null && chmod 1777 "$REGISTRY" 2>/dev/null || true
    printf '%s\n' "$DIR" >"$REGISTRY/$1" 2>/dev/null || true
}

registry_release() {  # registry_release PORT (only if owned by DIR)
    local f="$REGISTRY/$1"
    if [[ -f "$f" && "$(cat "$f" 2>/dev/null)" == "$DIR" ]]; then rm -f "$f" || true; fi
}

check_port_free() {  # check_port_free PORT WHAT ENVVAR
    local port=$1 what=$2 var=$3 owner=""
    port_busy "$port" || return 0
    [[ -f "$REGISTRY/$port" ]] && owner=$(cat "$REGISTRY/$port" 2>/dev/null || true)
    if [[ -n "$owner" && "$owner" != "$DIR" ]]; then
        die "port $port ($what) is already in use by a previous services.sh run in $owner; stop it with: bash $0 stop $owner   (or choose another port with $var=...)"
    fi
    die "port $port ($what) on 127.0.0.1 is already in use by another process; stop it or choose another port with $var=..."
}

# ---------------------------------------------------------------------------------------------
# installation
# ---------------------------------------------------------------------------------------------
ensure_packages() {
    local pkgs=()
    [[ -n "$(pg_bindir)" ]] || pkgs+=(postgresql)
    [[ -x $REDIS_BIN && -x $REDIS_CLI ]] || pkgs+=(redis-server redis-tools)
    [[ -x $ORTHANC_BIN ]] || pkgs+=(orthanc)
    [[ -f ${ORTHANC_PLUGINS[0]} ]] || pkgs+=(orthanc-dicomweb)
    [[ -f ${ORTHANC_PLUGINS[1]} ]] || pkgs+=(orthanc-gdcm)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v runuser >/dev/null 2>&1 && command -v setsid >/dev/null 2>&1 || pkgs+=(util-linux)
    # Browser tests (Debian's Chromium: Playwright's own browser download is refused here), compose-file
    # validation without a Docker engine, and msgfmt for the translations.
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
    command -v docker-compose >/dev/null 2>&1 || pkgs+=(docker-compose)
    command -v msgfmt >/dev/null 2>&1 || pkgs+=(gettext)
    # The TLS reverse-proxy test (tests/deployment/test_tls_proxy.py) runs nginx with a self-signed certificate.
    [[ -x $NGINX_BIN ]] || pkgs+=(nginx)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    # dciodvfy (David Clunie's IOD verifier, the standard's own checker) validates every DICOM object the
    # export writes (tests/datasets/dciodvfy.py).
    command -v dciodvfy >/dev/null 2>&1 || pkgs+=(dicom3tools)
    command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
    # Without a CJK font Chromium draws the Simplified Chinese interface as empty boxes.
    compgen -G "/usr/share/fonts/opentype/noto/NotoSansCJK*" >/dev/null || pkgs+=(fonts-noto-cjk)
    ((${#pkgs[@]} == 0)) && return 0

    log "installing missing packages: ${pkgs[*]}"
    local SUDO=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing packages (${pkgs[*]}) and not root / no sudo"
        SUDO=(sudo -n)
    fi
    # Keep the packages' postinst scripts from starting the system-wide default services
    # (postgres on 5432, redis on 6379, orthanc on 8042): deny via policy-rc.d during install.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0
    {
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                --no-install-recommends "${pkgs[@]}"
    } >&2 || rc=$?
    ((created_policy)) && "${SUDO[@]}" rm -f "$policy"
    ((rc == 0)) || die "apt-get install failed (rc=$rc) for: ${pkgs[*]}"

    [[ -n "$(pg_bindir)" ]] || die "postgres binary still missing after install"
    for f in "$REDIS_BIN" "$REDIS_CLI" "$ORTHANC_BIN" "${ORTHANC_PLUGINS[@]}" "$NGINX_BIN"; do
        [[ -e $f ]] || die "$f still missing after install"
    done
}

# ---------------------------------------------------------------------------------------------
# stop
# ---------------------------------------------------------------------------------------------
# Ports recorded by the last start (fall back to current env/defaults).
load_state() {
    S_PG_PORT=$PG_PORT S_REDIS_PORT=$REDIS_PORT S_ORTHANC_HTTP_PORT=$ORTHANC_HTTP_PORT
    S_ORTHANC_DICOM_PORT=$ORTHANC_DICOM_PORT S_PG_SOCKDIR=""
    if [[ -f "$DIR/state" ]]; then
        # shellcheck disable=SC1091
        source "$DIR/state"
    fi
}

wait_pid_gone() {  # wait_pid_gone PID SECONDS
    local pid=$1 n=$(($2 * 10))
    while ((n-- > 0)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    return 1
}

stop_orthanc() {
    local pidf="$DIR/orthanc/orthanc.pid" pid
    pid=$(read_pidfile "$pidf")
    if pid_is "$pid" Orthanc; then
        log "stopping Orthanc (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_pid_gone "$pid" 30; then
            log "Orthanc did not exit after 30 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_pid_gone "$pid" 5 || true
        fi
    else
        log "Orthanc not running"
    fi
    rm -f "$pidf"
    registry_release "$S_ORTHANC_HTTP_PORT"
    registry_release "$S_ORTHANC_DICOM_PORT"
}

stop_redis() {
    local pidf="$DIR/redis/redis.pid" pid
    pid=$(read_pidfile "$pidf")
    if pid_is "$pid" redis-server; then
        log "stopping Redis (pid $pid, port $S_REDIS_PORT)"
        timeout 10 "$REDIS_CLI" -h 127.0.0.1 -p "$S_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        if ! wait_pid_gone "$pid" 10; then
            kill -TERM "$pid" 2>/dev/null || true
            if ! wait_pid_gone "$pid" 10; then
                kill -KILL "$pid" 2>/dev/null || true
                wait_pid_gone "$pid" 5 || true
            fi
        fi
    else
        log "Redis not running"
    fi
    rm -f "$pidf"
    registry_release "$S_REDIS_PORT"
}

stop_postgres() {
    local pgdata="$DIR/pg" bindir pid
    bindir=$(pg_bindir || true)
    pid=$(read_pidfile "$pgdata/postmaster.pid")
    if [[ -n "$bindir" && -f "$pgdata/PG_VERSION" ]] && pid_is "$pid" postgres; then
        log "stopping PostgreSQL (pid $pid, port $S_PG_PORT)"
        as_pg "$bindir/pg_ctl" -D "$pgdata" stop -m fast -w -t 30 >/dev/null 2>&1 || {
            log "pg_ctl stop -m fast failed, trying immediate"
            as_pg "$bindir/pg_ctl" -D "$pgdata" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
        }
        if pid_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            wait_pid_gone "$pid" 5 || true
        fi
    else
        log "PostgreSQL not running"
    fi
    # a short socket dir outside DIR is only used when DIR's path is too long
    if [[ -n "${S_PG_SOCKDIR:-}" && "$S_PG_SOCKDIR" != "$DIR"/* && -d "$S_PG_SOCKDIR" ]]; then
        rm -rf "$S_PG_SOCKDIR" || true
    fi
    registry_release "$S_PG_PORT"
}

cmd_stop() {
    if [[ ! -d "$DIR" ]]; then
        log "$DIR does not exist; nothing to stop"
        return 0
    fi
    load_state
    # Each step is best-effort: stop must never fail.
    # Orthanc takes ~3 s to shut down (HTTP/DICOM server threads): stop it in parallel.
    (stop_orthanc) &
    local orthanc_stopper=$!
    (stop_redis) || log "warning: stopping Redis reported an error"
    (stop_postgres) || log "warning: stopping PostgreSQL reported an error"
    wait "$orthanc_stopper" || log "warning: stopping Orthanc reported an error"
    log "all services in $DIR stopped"
    return 0
}

# ---------------------------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------------------------
start_postgres() {
    local bindir=$1 pgdata="$DIR/pg" sockdir="$DIR/pg-socket"
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "OS user 'postgres' missing (is the postgresql package installed?)"
        # postgres must be able to traverse DIR (mktemp -d makes it 0700)
        chmod a+x "$DIR"
        runuser -u postgres -- test -x "$DIR" ||
            die "user postgres cannot access $DIR (a parent directory is not world-traversable, e.g. mktemp -d inside another mktemp -d); use a DIR directly under /tmp"
    fi
    # Unix socket paths are limited to 107 bytes; fall back to a short dir under /tmp.
    if ((${#sockdir} + 20 > 100)); then
        sockdir=$(mktemp -d /tmp/mlpg.XXXXXX)
        log "DIR path too long for a unix socket; using $sockdir"
    fi
    PG_SOCKDIR=$sockdir
    write_state  # records the socket dir so stop/failure cleanup can remove it

    if [[ -d "$pgdata" && ! -f "$pgdata/PG_VERSION" ]]; then
        log "removing incomplete cluster in $pgdata"
        rm -rf "$pgdata"
    fi
    mkdir -p "$sockdir"
    if [[ ! -d "$pgdata" ]]; then
        mkdir -p "$pgdata"
        [[ $EUID -eq 0 ]] && chown postgres: "$pgdata" "$sockdir"
        chmod 700 "$pgdata"
        log "initdb $pgdata ($("$bindir/postgres" --version))"
        as_pg "$bindir/initdb" -D "$pgdata" -U postgres -E UTF8 --no-locale -N \
            --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 || {
            tail_log "$DIR/initdb.log"
            die "initdb failed"
        }
        echo "include_if_exists = 'medlabel-test.conf'" | as_pg tee -a "$pgdata/postgresql.conf" >/dev/null
    else
        log "reusing existing cluster in $pgdata"
        [[ $EUID -eq 0 ]] && chown postgres: "$sockdir"
    fi
    chmod 700 "$sockdir"

    # (Re)written on every start so port changes take effect on a reused cluster.
    as_pg tee "$pgdata/medlabel-test.conf" >/dev/null <<EOF
# written by scripts/services.sh - test settings, NOT durable
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdir'
unix_socket_permissions = 0700
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
EOF
    # Unix socket (only the cluster owner can reach it: dir is 0700) trusted, TCP needs password.
    as_pg tee "$pgdata/pg_hba.conf" >/dev/null <<EOF
# written by scripts/services.sh
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
EOF
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -W start >/dev/null 2>&1 || {
        tail_log "$pgdata/server.log"
        die "pg_ctl start failed"
    }
}

pg_postmaster_alive() {
    local pid
    pid=$(read_pidfile "$DIR/pg/postmaster.pid")
    # the pid file may not exist yet in the first moments
    [[ -z "$pid" ]] && ((SECONDS - PG_STARTED < 5)) && return 0
    pid_alive "$pid"
}

finish_postgres() {
    local bindir=$1
    wait_until PostgreSQL "$DIR/pg/server.log" pg_postmaster_alive \
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres
    # pg_isready says "accepting" slightly before the socket is usable in rare cases: retry
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        as_pg "$bindir/psql" -X -q -h "$PG_SOCKDIR" -p "$PG_PORT" -U postgres -d postgres \
            -v ON_ERROR_STOP=1 >"$DIR/pg-setup.log" 2>&1 <<EOF && break
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
EOF
        ((i == 10)) && { tail_log "$DIR/pg-setup.log"; tail_log "$DIR/pg/server.log"; die "creating role/database failed"; }
        sleep 0.5
    done
    # The real check: password auth over TCP as the app user.
    wait_until "PostgreSQL (medlabel over TCP)" "$DIR/pg/server.log" pg_postmaster_alive \
        env PGPASSWORD="$DB_PASSWORD" PGCONNECT_TIMEOUT=5 "$bindir/psql" -X -At -w \
        -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" -d "$DB_NAME" -c 'select 1'
}

start_redis() {
    mkdir -p "$DIR/redis"
    rm -f "$DIR/redis/redis.pid"
    : >"$DIR/redis/redis.log"
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    "$REDIS_BIN" --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
        --dir "$DIR/redis" --save '' --appendonly no \
        --pidfile "$DIR/redis/redis.pid" --logfile "$DIR/redis/redis.log" \
        </dev/null >>"$DIR/redis/redis.log" 2>&1 || {
        tail_log "$DIR/redis/redis.log"
        die "redis-server failed to start"
    }
}

redis_alive() {
    local pid
    pid=$(read_pidfile "$DIR/redis/redis.pid")
    [[ -z "$pid" ]] && ((SECONDS - REDIS_STARTED < 5)) && return 0
    pid_alive "$pid"
}

write_orthanc_config() {
    local o="$DIR/orthanc"
    mkdir -p "$o/storage" "$o/index"
    cat >"$o/orthanc.json" <<EOF
{
  "Name": "MEDLABEL-TEST",
  "StorageDirectory": "$o/storage",
  "IndexDirectory": "$o/index",
  "HttpPort": $ORTHANC_HTTP_PORT,
  "DicomPort": $ORTHANC_DICOM_PORT,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "Plugins": [
    "${ORTHANC_PLUGINS[0]}",
    "${ORTHANC_PLUGINS[1]}"
  ],
  "DicomWeb": {
    "Enable": true,
    "Root": "/dicom-web/",
    "Host": "127.0.0.1:$ORTHANC_HTTP_PORT",
    "Ssl": false
  },
  "Gdcm": {
    "Enable": true,
    "RestrictTransferSyntaxes": [
      "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"
    ]
  },
  "HttpTimeout": 60,
  "StableAge": 1,
  "KeepAlive": true
}
EOF
}

start_orthanc() {
    local o="$DIR/orthanc"
    write_orthanc_config
    log "starting Orthanc (HTTP 127.0.0.1:$ORTHANC_HTTP_PORT, DICOM $ORTHANC_DICOM_PORT)"
    : >"$o/orthanc.log"
    # setsid: own session, so the caller's job control / Ctrl-C does not hit it; all fds
    # redirected so callers capturing our output do not hang on an inherited pipe.
    setsid nohup "$ORTHANC_BIN" "$o/orthanc.json" </dev/null >>"$o/orthanc.log" 2>&1 &
    ORTHANC_PID=$!
    echo "$ORTHANC_PID" >"$o/orthanc.pid"
}

orthanc_alive() { pid_alive "$ORTHANC_PID"; }

orthanc_ready() {
    curl -fsS -m 5 "http://127.0.0.1:$ORTHANC_HTTP_PORT/system" >/dev/null &&
        curl -fsS -m 5 "http://127.0.0.1:$ORTHANC_HTTP_PORT/dicom-web/studies" >/dev/null
}

write_env() {
    local tmp="$DIR/env.tmp"
    {
        echo "# generated by scripts/services.sh start - source this file"
        printf 'export DATABASE_URL=%q\n' "postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME"
        printf 'export CELERY_BROKER_URL=%q\n' "redis://127.0.0.1:$REDIS_PORT/0"
        printf 'export REDIS_URL=%q\n' "redis://127.0.0.1:$REDIS_PORT/1"
        printf 'export ORTHANC_URL=%q\n' "http://127.0.0.1:$ORTHANC_HTTP_PORT"
        printf 'export ORTHANC_DICOMWEB_URL=%q\n' "http://127.0.0.1:$ORTHANC_HTTP_PORT/dicom-web"
        printf 'export SERVICES_DIR=%q\n' "$DIR"
    } >"$tmp"
    mv -f "$tmp" "$DIR/env"
}

write_state() {
    {
        printf 'S_PG_PORT=%q\n' "$PG_PORT"
        printf 'S_REDIS_PORT=%q\n' "$REDIS_PORT"
        printf 'S_ORTHANC_HTTP_PORT=%q\n' "$ORTHANC_HTTP_PORT"
        printf 'S_ORTHANC_DICOM_PORT=%q\n' "$ORTHANC_DICOM_PORT"
        printf 'S_PG_SOCKDIR=%q\n' "${PG_SOCKDIR:-}"
    } >"$DIR/state"
}

on_start_failure() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        log "start failed (rc=$rc); stopping whatever was started in $DIR"
        cmd_stop || true
    fi
    exit "$rc"
}

cmd_start() {
    local t0=$SECONDS
    for v in PG_PORT REDIS_PORT ORTHANC_HTTP_PORT ORTHANC_DICOM_PORT TIMEOUT; do
        [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
    done
    ensure_packages
    local bindir
    bindir=$(pg_bindir)

    # Restart cleanly if this DIR already has services running.
    if [[ -f "$DIR/state" || -d "$DIR/pg" || -d "$DIR/redis" || -d "$DIR/orthanc" ]]; then
        log "$DIR was used before: stopping anything still running there"
        cmd_stop
    fi
    if [[ "${SERVICES_FRESH:-0}" == 1 ]]; then
        log "SERVICES_FRESH=1: wiping previous data in $DIR"
        rm -rf "$DIR/pg" "$DIR/pg-socket" "$DIR/redis" "$DIR/orthanc" "$DIR/env" "$DIR/state"
    fi

    check_port_free "$PG_PORT" PostgreSQL PG_PORT
    check_port_free "$REDIS_PORT" Redis REDIS_PORT
    check_port_free "$ORTHANC_HTTP_PORT" "Orthanc HTTP" ORTHANC_HTTP_PORT
    check_port_free "$ORTHANC_DICOM_PORT" "Orthanc DICOM" ORTHANC_DICOM_PORT

    rm -f "$DIR/env"
    trap on_start_failure EXIT
    PG_SOCKDIR=""
    write_state  # so a failed start can still be stopped

    # Launch all three, then wait (overlaps their start-up time).
    start_postgres "$bindir"
    PG_STARTED=$SECONDS
    write_state
    registry_claim "$PG_PORT"
    start_redis
    REDIS_STARTED=$SECONDS
    registry_claim "$REDIS_PORT"
    start_orthanc
    registry_claim "$ORTHANC_HTTP_PORT"
    registry_claim "$ORTHANC_DICOM_PORT"

    finish_postgres "$bindir"
    wait_until Redis "$DIR/redis/redis.log" redis_alive \
        "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping
    [[ "$("$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] ||
        { tail_log "$DIR/redis/redis.log"; die "Redis did not answer PONG"; }
    wait_until Orthanc "$DIR/orthanc/orthanc.log" orthanc_alive orthanc_ready
    pid_is "$ORTHANC_PID" Orthanc || die "Orthanc pid $ORTHANC_PID is not an Orthanc process"

    write_env
    trap - EXIT
    log "all services up in $((SECONDS - t0)) s; env written to $DIR/env:"
    sed 's/^/[services]   /' "$DIR/env" >&2
}

cmd_status() {
    load_state
    local pid rc=0
    pid=$(read_pidfile "$DIR/pg/postmaster.pid")
    if pid_is "$pid" postgres; then log "PostgreSQL: running (pid $pid, port $S_PG_PORT)"; else log "PostgreSQL: stopped"; rc=3; fi
    pid=$(read_pidfile "$DIR/redis/redis.pid")
    if pid_is "$pid" redis-server; then log "Redis: running (pid $pid, port $S_REDIS_PORT)"; else log "Redis: stopped"; rc=3; fi
    pid=$(read_pidfile "$DIR/orthanc/orthanc.pid")
    if pid_is "$pid" Orthanc; then log "Orthanc: running (pid $pid, port $S_ORTHANC_HTTP_PORT)"; else log "Orthanc: stopped"; rc=3; fi
    return $rc
}

# ---------------------------------------------------------------------------------------------
main() {
    (($# == 2)) || usage
    local cmd=$1
    [[ -n "$2" ]] || usage
    case "$cmd" in
    start)
        mkdir -p "$2"
        DIR=$(cd "$2" && pwd -P)
        cmd_start
        ;;
    stop)
        if [[ -d "$2" ]]; then DIR=$(cd "$2" && pwd -P); else DIR=$2; fi
        cmd_stop
        ;;
    status)
        [[ -d "$2" ]] || die "$2 does not exist"
        DIR=$(cd "$2" && pwd -P)
        cmd_status
        ;;
    *) usage ;;
    esac
}

main "$@"
