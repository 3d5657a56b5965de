#!/usr/bin/env bash
# Starts the whole system in the foreground (the embedded default of
# DESIGN.md decision 11): a private PostgreSQL cluster under $DATA_DIR, the
# broker, every service that exists and the gateway. Ctrl-C (or `make stop`
# from another terminal) stops everything it started.
#
# Settings (environment): PORT (gateway, 8080), HOST (127.0.0.1),
# DATA_DIR (var), PG_PORT (55432), BROKER_PORT (5555; events use the next
# two ports), WORKERS (threads per service, 4), JWT_SECRET (generated once
# into $DATA_DIR/jwt_secret when unset), LOG_LEVEL (info).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
: "${PORT:=8080}" "${HOST:=127.0.0.1}" "${DATA_DIR:=var}" "${PG_PORT:=55432}" "${BROKER_PORT:=5555}"
: "${BIN_DIR:=build/bin}"
mkdir -p "$DATA_DIR/log" "$DATA_DIR/run"
DATA_DIR=$(cd "$DATA_DIR" && pwd)

if [ -f "$DATA_DIR/run/supervisor.pid" ] && kill -0 "$(cat "$DATA_DIR/run/supervisor.pid")" 2>/dev/null; then
  echo "run: already running (pid $(cat "$DATA_DIR/run/supervisor.pid")); 'make stop' first" >&2
  exit 1
fi
echo $$ > "$DATA_DIR/run/supervisor.pid"

if [ -z "${JWT_SECRET:-}" ]; then
  if [ ! -s "$DATA_DIR/jwt_secret" ]; then
    (umask 077; head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA_DIR/jwt_secret")
  fi
  JWT_SECRET=$(cat "$DATA_DIR/jwt_secret")
fi
if [ -z "${CURSOR_SECRET:-}" ]; then
  [ -s "$DATA_DIR/cursor_secret" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA_DIR/cursor_secret")
  CURSOR_SECRET=$(cat "$DATA_DIR/cursor_secret")
fi

export JWT_SECRET CURSOR_SECRET
export BROKER_URL="ipc://$DATA_DIR/run/requests.ipc"
export EVENTS_PUB_URL="ipc://$DATA_DIR/run/events-pub.ipc"
export EVENTS_SUB_URL="ipc://$DATA_DIR/run/events-sub.ipc"
export DATABASE_URL="postgresql://app@127.0.0.1:$PG_PORT/app"
export SCHEMAS_DIR="$ROOT/schemas"
export MEDIA_DIR="${MEDIA_DIR:-$DATA_DIR/media}"
export GATEWAY_LISTEN="$HOST:$PORT"

# Services are the folders of services/ with a main.c, the broker apart.
SERVICES=()
for main in services/*/main.c; do
  name=$(basename "$(dirname "$main")")
  [ "$name" = broker ] || SERVICES+=("$name")
done
export GATEWAY_SERVICES=$(IFS=,; echo "${SERVICES[*]}")

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "run: stopping"
  DATA_DIR="$DATA_DIR" bash "$ROOT/scripts/stop.sh" --from-run
  exit 0
}
trap stop_all INT TERM EXIT

bash scripts/pg.sh start "$DATA_DIR/pg" "$PG_PORT" >"$DATA_DIR/log/pg-start.log" 2>&1 || {
  cat "$DATA_DIR/log/pg-start.log" >&2; exit 1; }

start() { # name, command...
  local name=$1; shift
  "$@" >>"$DATA_DIR/log/$name.log" 2>&1 &
  echo $! > "$DATA_DIR/run/$name.pid"
}

start broker "$BIN_DIR/broker"
for s in "${SERVICES[@]}"; do start "$s" "$BIN_DIR/$s"; done
start gateway "$BIN_DIR/gateway"

ready=0
for _ in $(seq 1 100); do
  if curl -fsS "http://$HOST:$PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
if [ $ready -ne 1 ]; then
  echo "run: the system did not become ready; logs in $DATA_DIR/log/" >&2
  tail -n 5 "$DATA_DIR"/log/*.log >&2 || true
  exit 1
fi

cat <<MSG

  Ready: http://$HOST:$PORT/   (API under http://$HOST:$PORT/api/v1, see docs/openapi.yaml)
  Services: broker, ${SERVICES[*]}, gateway; Postgres on 127.0.0.1:$PG_PORT (data in $DATA_DIR/pg)
  Logs: $DATA_DIR/log/*.log     Stop: Ctrl-C here, or 'make stop' from another terminal

MSG

# Stay in the foreground until a process dies or we are told to stop.
while true; do
  for f in "$DATA_DIR"/run/*.pid; do
    name=$(basename "$f" .pid)
    [ "$name" = supervisor ] && continue
    if ! kill -0 "$(cat "$f")" 2>/dev/null; then
      echo "run: $name exited; see $DATA_DIR/log/$name.log" >&2
      tail -n 5 "$DATA_DIR/log/$name.log" >&2 || true
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
