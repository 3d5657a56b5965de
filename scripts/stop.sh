#!/usr/bin/env bash
# Stops what scripts/run.sh started: the gateway first (no new requests),
# then the services, the broker and Postgres. SIGTERM lets each finish what
# it holds; whatever is still alive after 10 s gets SIGKILL, so no process is
# left behind.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
: "${DATA_DIR:=var}"
[ -d "$DATA_DIR" ] || exit 0
DATA_DIR=$(cd "$DATA_DIR" && pwd)
RUN="$DATA_DIR/run"

if [ "${1:-}" != "--from-run" ] && [ -f "$RUN/supervisor.pid" ]; then
  # Ask the foreground `make run` to stop; it calls us back with --from-run.
  sup=$(cat "$RUN/supervisor.pid")
  if kill -0 "$sup" 2>/dev/null; then
    kill -TERM "$sup" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$sup" 2>/dev/null || break; sleep 0.1; done
  fi
fi

stop_pid_file() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

stop_pid_file "$RUN/gateway.pid"
for f in "$RUN"/*.pid; do
  case "$(basename "$f")" in broker.pid|supervisor.pid|gateway.pid) ;; *) stop_pid_file "$f" & ;; esac
done
wait
stop_pid_file "$RUN/broker.pid"
[ -d "$DATA_DIR/pg" ] && bash scripts/pg.sh stop "$DATA_DIR/pg" >/dev/null 2>&1
rm -f "$RUN/supervisor.pid"
echo "stopped"
