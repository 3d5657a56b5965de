#!/bin/bash
# Health probes for containers (Compose healthchecks, Kubernetes exec
# probes). Exit 0 when healthy, 1 otherwise; one line on stdout says why.
#
#   probe http PATH [PORT]   GET http://127.0.0.1:PORT/PATH answers 200
#                            (gateway: /healthz = the process serves HTTP,
#                            /readyz = it also reaches every service of
#                            GATEWAY_SERVICES). PORT defaults to the port
#                            of GATEWAY_LISTEN, else 8080.
#   probe broker             the broker on this host answers: a call for a
#                            service nobody serves gets the broker's own
#                            503 at once, while a dead broker lets the call
#                            time out (504). Uses BROKER_URL's port.
#   probe service NAME       some worker of NAME answers through the broker
#                            (BROKER_URL): any reply but 503/504 counts, so
#                            "unknown method" (404) for sys.ping is healthy.
#
# Services have no HTTP port and no --check flag: the only way to ask one is
# a request through the broker, which goes to whichever replica is idle, not
# necessarily this container's. So `probe service` says "the service
# answers", not "this process answers"; the deployments pair it with
# minReadySeconds (docs/operations.md, probes). Written for bash's
# /dev/tcp so the image needs no curl.
set -u
TIMEOUT_MS=${PROBE_TIMEOUT_MS:-2000}

# Prints the "status" number of zcall's one-line JSON reply, or nothing.
reply_status() {
    sed -n 's/^{"status":\([0-9][0-9]*\).*/\1/p' | head -n 1
}

local_broker_url() {
    # The broker binds e.g. tcp://*:5555 or tcp://0.0.0.0:5555; connect to
    # the same port on loopback.
    local url=${BROKER_URL:-tcp://127.0.0.1:5555}
    echo "tcp://127.0.0.1:${url##*:}"
}

probe_http() {
    local path=$1 port=${2:-}
    if [ -z "$port" ]; then
        port=${GATEWAY_LISTEN:-127.0.0.1:8080}
        port=${port##*:}
    fi
    local seconds=$(((TIMEOUT_MS + 999) / 1000))
    local line
    line=$(
        timeout "$seconds" bash -c '
            exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
            printf "GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: probe\r\n\r\n" "$2" >&3
            head -n 1 <&3' probe "$port" "$path" 2>/dev/null
    )
    case "$line" in
    "HTTP/1."?" 200"*)
        echo "ok: GET $path -> 200"
        return 0
        ;;
    esac
    echo "fail: GET $path on port $port -> ${line:-no answer}"
    return 1
}

probe_broker() {
    local out status
    out=$(zcall --broker "$(local_broker_url)" --timeout "$TIMEOUT_MS" healthcheck sys.ping 2>/dev/null)
    status=$(printf '%s\n' "$out" | reply_status)
    if [ "$status" = 503 ]; then
        echo "ok: broker answers"
        return 0
    fi
    echo "fail: broker -> ${out:-no answer}"
    return 1
}

probe_service() {
    local name=$1 out status
    out=$(zcall --timeout "$TIMEOUT_MS" "$name" sys.ping 2>/dev/null)
    status=$(printf '%s\n' "$out" | reply_status)
    case "$status" in
    "" | 503 | 504)
        echo "fail: $name -> ${out:-no answer}"
        return 1
        ;;
    esac
    echo "ok: $name answers ($status)"
    return 0
}

case "${1:-}" in
http)
    [ $# -ge 2 ] || exit 2
    probe_http "$2" "${3:-}"
    ;;
broker) probe_broker ;;
service)
    [ $# -eq 2 ] || exit 2
    probe_service "$2"
    ;;
*)
    sed -n '2,/^set -u/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
