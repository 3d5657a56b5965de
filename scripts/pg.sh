#!/usr/bin/env bash
# pg.sh: a private PostgreSQL 15 cluster in a data folder, for `make run` and
# the tests.
#
#   scripts/pg.sh start   DATADIR PORT   initdb on first use, start, wait until
#                                        ready, create role and database `app`;
#                                        prints postgresql://app@127.0.0.1:PORT/app
#                                        (idempotent: a running cluster is left
#                                        as it is and its URL printed)
#   scripts/pg.sh stop    DATADIR        fast shutdown; no-op when not running
#   scripts/pg.sh status  DATADIR        exit 0 and print the URL when running,
#                                        exit 3 when not
#   scripts/pg.sh destroy DATADIR        stop and delete the cluster
#
# The cluster trusts local connections and listens on 127.0.0.1 only, with its
# unix socket inside the cluster folder, so several clusters (one per test
# run, one for `make run`) live side by side. The bootstrap superuser is named
# `app`, which is the role the services connect as. PG_FAST=1 at start turns
# off fsync, synchronous_commit and full_page_writes (tests: durability does
# not matter, speed does). max_connections is 200. The server log is
# DATADIR/log/postgresql.log.
#
# shared_buffers is PG_SHARED_BUFFERS (a size such as 512MB) or, by default,
# an eighth of the machine's memory between 128MB and 1GB, given at each start
# so an existing cluster follows the machine. Postgres's own 128MB left a
# 1,000,000-post search schema (322 MB of posts) reading most pages from the
# OS cache: post search p99 62 ms with 128MB, 37 ms with 1GB on this 24 GiB
# machine (docs/benchmarks.md, session 7). Linux commits the memory only as
# pages are used, so the small clusters of the tests do not take it.
#
# PG_LISTEN=ADDRESS at start also listens on that address (besides
# 127.0.0.1) and trusts clients from the networks of the host's own
# interfaces (pg_hba `samenet`). For tests whose hosts are network
# namespaces on a private subnet (scripts/test-multihost.sh), never for a
# cluster reachable from a real network: there is no password.
#
# Running as root. postgres refuses to run as root, so the server runs as an
# unprivileged system user (PG_OS_USER, default `postgres`, created with
# useradd when missing) through runuser, and owns the cluster folder. That
# user must be able to reach DATADIR through every parent directory. A fresh
# clone under /work/main or /tmp/ci/x is usually fine, but one under /root
# (mode 700) is not, and silently changing the mode of /root or of the
# caller's folders is not this script's business. So when the user cannot
# traverse DATADIR's parent, the cluster is placed in
# ${PG_CLUSTER_BASE:-/var/tmp}/pgcluster-<hash of DATADIR's absolute path>
# and DATADIR becomes a symlink to it (root follows it; the server is always
# given the real path). `destroy` removes both. When run as a normal user,
# everything runs as that user and DATADIR is used as it is.
#
# Concurrent invocations for the same DATADIR serialize on a flock of its
# parent directory, so two test binaries starting together do not race initdb.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_OS_USER=${PG_OS_USER:-postgres}
PG_CLUSTER_BASE=${PG_CLUSTER_BASE:-/var/tmp}

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Absolute path of $1 without requiring it to exist (realpath -m keeps a
# trailing symlink unresolved only with -s; we want the link itself here).
abspath() {
    realpath -m -s -- "$1"
}

is_root() {
    [ "$(id -u)" -eq 0 ]
}

# Runs a command as the cluster's OS user, from / (the caller's working
# directory may be unreadable to that user, and initdb/pg_ctl complain),
# without the lock descriptor (the server would inherit it and hold the lock
# for its whole life).
as_pg() {
    if is_root; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@" 9<&-)
    else
        (cd / && "$@" 9<&-)
    fi
}

ensure_os_user() {
    is_root || return 0
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            "$PG_OS_USER" || die "cannot create system user $PG_OS_USER"
    fi
}

# True when the cluster user can traverse directory $1.
can_traverse() {
    if is_root; then
        (cd / && runuser -u "$PG_OS_USER" -- test -x "$1") 2>/dev/null
    else
        test -x "$1"
    fi
}

# Sets CLUSTER to the real cluster folder behind DATADIR (which may be a
# symlink made by an earlier start). For `start`, creates what is missing.
resolve_cluster() {
    local create=$1
    if [ -L "$DATADIR" ]; then
        CLUSTER=$(readlink -f -- "$DATADIR")
        return 0
    fi
    if [ -d "$DATADIR" ] || [ "$create" != yes ]; then
        CLUSTER=$DATADIR
        if [ "$create" = yes ] && ! can_traverse "$(dirname -- "$DATADIR")"; then
            # An existing plain folder the server cannot reach: use it only if
            # it is empty, by turning it into the symlink below.
            if [ -n "$(ls -A -- "$DATADIR")" ]; then
                die "$DATADIR is not reachable by user $PG_OS_USER (check the modes of its parents)"
            fi
            rmdir -- "$DATADIR"
        else
            return 0
        fi
    fi
    mkdir -p -- "$(dirname -- "$DATADIR")"
    if can_traverse "$(dirname -- "$DATADIR")"; then
        CLUSTER=$DATADIR
        return 0
    fi
    local hash
    hash=$(printf '%s' "$DATADIR" | sha1sum | cut -c1-16)
    CLUSTER=$PG_CLUSTER_BASE/pgcluster-$hash
    mkdir -p -- "$CLUSTER"
    ln -s -- "$CLUSTER" "$DATADIR"
    echo "pg.sh: $(dirname -- "$DATADIR") is not reachable by $PG_OS_USER;" \
        "the cluster lives in $CLUSTER (DATADIR is a symlink to it)" >&2
}

# The unix socket folder: inside the cluster unless the socket path would
# pass the kernel's 107-byte limit.
socket_dir() {
    local dir=$CLUSTER
    if [ $((${#dir} + 20)) -gt 100 ]; then
        dir=/tmp/pgsock-$(printf '%s' "$CLUSTER" | sha1sum | cut -c1-16)
    fi
    printf '%s' "$dir"
}

lock_parent() {
    local parent
    parent=$(dirname -- "$DATADIR")
    mkdir -p -- "$parent"
    exec 9<"$parent"
    flock 9
}

running() {
    [ -f "$CLUSTER/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" status -D "$CLUSTER" >/dev/null 2>&1
}

# Port of the running server (first line after the pid in postmaster.pid
# holds the data folder; the fourth holds the port).
running_port() {
    sed -n '4p' "$CLUSTER/postmaster.pid" 2>/dev/null
}

# An eighth of MemTotal in MB, clamped to 128..1024, unless PG_SHARED_BUFFERS.
shared_buffers() {
    if [ -n "${PG_SHARED_BUFFERS:-}" ]; then
        [[ $PG_SHARED_BUFFERS =~ ^[0-9]+(kB|MB|GB)$ ]] ||
            die "bad PG_SHARED_BUFFERS (a size such as 512MB): $PG_SHARED_BUFFERS"
        echo "$PG_SHARED_BUFFERS"
        return
    fi
    awk '/^MemTotal:/ { mb = int($2 / 1024 / 8); if (mb < 128) mb = 128;
        if (mb > 1024) mb = 1024; print mb "MB"; found = 1 }
        END { if (!found) print "128MB" }' /proc/meminfo 2>/dev/null || echo 128MB
}

do_initdb() {
    local sock=$1
    mkdir -p -- "$CLUSTER"
    if is_root; then
        chown "$PG_OS_USER": "$CLUSTER"
    fi
    chmod 700 "$CLUSTER"
    as_pg "$PGBIN/initdb" -D "$CLUSTER" -U app --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >"$CLUSTER.initdb.log" 2>&1 || {
        cat "$CLUSTER.initdb.log" >&2
        rm -f "$CLUSTER.initdb.log"
        die "initdb failed"
    }
    rm -f "$CLUSTER.initdb.log"
    # root may write these files; they keep their owner.
    cat >>"$CLUSTER/postgresql.conf" <<EOF

# ---- pg.sh: private local cluster ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
max_connections = 200
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_min_error_statement = panic
EOF
    cat >"$CLUSTER/pg_hba.conf" <<EOF
# pg.sh: trust, local only
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    as_pg mkdir -p "$CLUSTER/log"
}

cmd_start() {
    [ $# -eq 2 ] || usage
    DATADIR=$(abspath "$1")
    local port=$2
    [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
    [ -x "$PGBIN/pg_ctl" ] || die "PostgreSQL 15 not found in $PGBIN (run: make deps)"
    ensure_os_user
    lock_parent
    resolve_cluster yes
    local sock
    sock=$(socket_dir)
    if [ "$sock" != "$CLUSTER" ]; then
        mkdir -p "$sock"
        if is_root; then chown "$PG_OS_USER": "$sock"; fi
    fi
    if [ ! -f "$CLUSTER/PG_VERSION" ]; then
        do_initdb "$sock"
    fi
    if running; then
        port=$(running_port)
        echo "postgresql://app@127.0.0.1:$port/app"
        return 0
    fi
    local buffers
    buffers=$(shared_buffers) || exit 1
    local opts="-p $port -c shared_buffers=$buffers"
    if [ "${PG_FAST:-0}" = 1 ]; then
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    if [ -n "${PG_LISTEN:-}" ]; then
        [[ $PG_LISTEN =~ ^[0-9A-Fa-f.:]+$ ]] || die "bad PG_LISTEN (one IP address): $PG_LISTEN"
        opts="$opts -c listen_addresses=127.0.0.1,$PG_LISTEN"
        grep -qx 'host  all all samenet trust' "$CLUSTER/pg_hba.conf" ||
            echo 'host  all all samenet trust' >>"$CLUSTER/pg_hba.conf"
    fi
    if ! as_pg "$PGBIN/pg_ctl" start -D "$CLUSTER" -w -t 60 -o "$opts" \
        -l "$CLUSTER/log/postgresql.log" >/dev/null; then
        tail -n 20 "$CLUSTER/log/postgresql.log" >&2 || true
        die "pg_ctl start failed (port $port in use?)"
    fi
    local _
    for _ in $(seq 1 100); do
        if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U app -d postgres; then break; fi
        sleep 0.1
    done
    if ! "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U app -d postgres -tAq \
        -c "select 1 from pg_database where datname = 'app'" | grep -q 1; then
        "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U app -d postgres -q -v ON_ERROR_STOP=1 \
            -c "create database app owner app" >/dev/null
    fi
    echo "postgresql://app@127.0.0.1:$port/app"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    DATADIR=$(abspath "$1")
    [ -e "$DATADIR" ] || return 0
    lock_parent
    resolve_cluster no
    if running; then
        as_pg "$PGBIN/pg_ctl" stop -D "$CLUSTER" -m fast -w -t 60 >/dev/null
    fi
}

cmd_status() {
    [ $# -eq 1 ] || usage
    DATADIR=$(abspath "$1")
    [ -e "$DATADIR" ] || {
        echo "not running (no cluster in $DATADIR)"
        exit 3
    }
    resolve_cluster no
    if running; then
        echo "postgresql://app@127.0.0.1:$(running_port)/app"
        return 0
    fi
    echo "not running"
    exit 3
}

cmd_destroy() {
    [ $# -eq 1 ] || usage
    DATADIR=$(abspath "$1")
    [ -e "$DATADIR" ] || [ -L "$DATADIR" ] || return 0
    lock_parent
    resolve_cluster no
    if running; then
        as_pg "$PGBIN/pg_ctl" stop -D "$CLUSTER" -m immediate -w -t 60 >/dev/null || true
    fi
    local sock
    sock=$(socket_dir)
    if [ "$sock" != "$CLUSTER" ]; then rm -rf -- "$sock"; fi
    if [ -L "$DATADIR" ]; then
        rm -rf -- "$CLUSTER"
        rm -f -- "$DATADIR"
    else
        rm -rf -- "$DATADIR"
    fi
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
destroy) cmd_destroy "$@" ;;
*) usage ;;
esac
