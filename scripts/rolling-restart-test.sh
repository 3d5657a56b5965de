#!/usr/bin/env bash
# rolling-restart-test.sh: restarts every process of a running system, one
# at a time, under a read/write load, and counts failed requests and lost
# writes (docs/operations.md, "Rolling restarts"). `make test` runs it as
# deploy/rolling-restart with shorter PAUSE and WARMUP.
#
#   bash scripts/rolling-restart-test.sh              # MODE=stop-start
#   MODE=surge bash scripts/rolling-restart-test.sh
#
# The system is started with scripts/run.sh on spare ports (PORT=18280,
# PG_PORT=18290, BROKER_PORT=18300, DATA_DIR=build/rolling-var,
# AUTH_RATE_LIMIT_PER_MIN=0; override any of them from the environment).
#
# Load: CLIENTS (4) loops of curl, each with its own users: a registration
# every 15 rounds, and per round GET /me, PATCH /me {bio} and one read owned
# by another service (followers: graph, posts: media, feed, search,
# conversations: messaging, unread count: notification), so every restart
# meets requests for the service it stops.
#
# Restarting one process started by run.sh. run.sh's supervisor tears
# everything down when a process in $DATA_DIR/run/<name>.pid dies, so a
# restart first points that pid file at the process that will be alive:
#   MODE=stop-start  a placeholder `sleep` holds the pid file; SIGTERM the
#                    old process, wait for it to exit, start the new one
#                    with the old one's exact environment
#                    (/proc/<pid>/environ) and command, point the pid file
#                    at it. Every process has a gap: the brief's literal
#                    "SIGTERM, start it again".
#   MODE=surge       what a Deployment with maxSurge=1, maxUnavailable=0
#                    does: a service's new copy starts first, and the old
#                    one gets SIGTERM once the new one logs "serving". Two
#                    gateways (PORT and PORT+1) serve behind an edge: real
#                    nginx with compose/nginx.conf when a binary is at hand
#                    (NGINX_BIN, PATH, or build/deploy-tools/ from
#                    scripts/validate-deploy.sh), else the clients fail over
#                    the way that config does (another gateway on a refused
#                    connection; on 503 too, for GET only). The broker is a
#                    singleton and is restarted stop-start in both modes.
#
# Order: each service (alphabetical), then the broker, then the gateway(s),
# PAUSE (4) seconds of load between restarts. Counted as failed: any answer
# other than the status a route gave during the WARMUP (5 s) before the
# first restart (WARMUP is extended until every route has succeeded once,
# at most 30 s; routes that did not succeed then are listed and left out),
# and curl errors. Lost writes: a PATCH /me answered 200 whose value (or a
# later attempted one) is not what GET /me returns at the end; a
# registration answered 201 whose user GET /users/{username} cannot find.
#
# Output under $DATA_DIR/rolling/: requests.log (one line per request),
# restarts.log, summary.txt. Exit 0 only with zero failures and zero lost
# writes. Everything started is stopped at the end (scripts/stop.sh).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
export PORT=${PORT:-18280} PG_PORT=${PG_PORT:-18290} BROKER_PORT=${BROKER_PORT:-18300}
export DATA_DIR=${DATA_DIR:-build/rolling-var}
export AUTH_RATE_LIMIT_PER_MIN=${AUTH_RATE_LIMIT_PER_MIN:-0}
export PG_FAST=${PG_FAST:-1} LOG_LEVEL=${LOG_LEVEL:-info}
MODE=${MODE:-stop-start}
CLIENTS=${CLIENTS:-4}
PAUSE=${PAUSE:-4}
WARMUP=${WARMUP:-5}
EDGE_PORT=${EDGE_PORT:-$((PORT + 70))}
case "$MODE" in stop-start | surge) ;; *)
  echo "MODE must be stop-start or surge" >&2
  exit 2
  ;;
esac

# --- build and fresh state ----------------------------------------------------
targets=(build/bin/broker build/bin/gateway)
for main in services/*/main.c; do
  name=$(basename "$(dirname "$main")")
  [ "$name" = broker ] || targets+=("build/bin/$name")
done
if ! make -s -j2 "${targets[@]}" >/dev/null; then
  echo "rolling-restart: the build failed" >&2
  exit 2
fi
bash scripts/stop.sh >/dev/null 2>&1 # a previous run's leftovers, if any
if [ -e "$DATA_DIR/pg" ]; then bash scripts/pg.sh destroy "$DATA_DIR/pg" >/dev/null 2>&1; fi
rm -rf "$DATA_DIR"
mkdir -p "$DATA_DIR/rolling"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
OUT=$DATA_DIR/rolling
RUN=$DATA_DIR/run
STOP_FLAG=$OUT/stop
: >"$OUT/restarts.log"

RUN_SH_PID=""
EDGE_PID=""
HOLDERS=()
CLIENT_PIDS=()
cleanup() {
  trap - EXIT INT TERM
  touch "$STOP_FLAG"
  for pid in "${CLIENT_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${HOLDERS[@]}"; do kill "$pid" 2>/dev/null; done
  if [ -n "$EDGE_PID" ]; then kill -QUIT "$EDGE_PID" 2>/dev/null; fi
  # stop.sh asks run.sh's supervisor to stop (it calls stop.sh back), then
  # stops every pid file's process, the restarted ones included.
  DATA_DIR="$DATA_DIR" bash scripts/stop.sh >/dev/null 2>&1
  if [ -n "$RUN_SH_PID" ]; then wait "$RUN_SH_PID" 2>/dev/null; fi
  if [ -n "$EDGE_PID" ]; then
    for _ in $(seq 1 50); do kill -0 "$EDGE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$EDGE_PID" 2>/dev/null
  fi
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }

# --- start the system ---------------------------------------------------------
echo "rolling-restart: MODE=$MODE, starting the system (scripts/run.sh on :$PORT)"
bash scripts/run.sh >"$OUT/run.out" 2>&1 &
RUN_SH_PID=$!
ready=0
for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && grep -q Ready "$OUT/run.out"; then
    ready=1
    break
  fi
  kill -0 "$RUN_SH_PID" 2>/dev/null || break
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "rolling-restart: the system did not start; see $OUT/run.out and $DATA_DIR/log/" >&2
  tail -n 20 "$OUT/run.out" >&2
  exit 2
fi

# Starts a program with the environment and command line of a running
# process (what run.sh gave it), in its working directory. Sets LAST_PID
# (started from this shell, not a $(...) subshell, so this shell reaps it
# and kill -0 never mistakes a zombie for a live process).
start_like() { # old_pid log_file [VAR=value...]
  local old=$1 log=$2
  shift 2
  local -a environ cmdline
  mapfile -d '' environ <"/proc/$old/environ"
  mapfile -d '' cmdline <"/proc/$old/cmdline"
  local cwd
  cwd=$(readlink "/proc/$old/cwd")
  (cd "$cwd" && exec env -i "${environ[@]}" "$@" "${cmdline[@]}" >>"$log" 2>&1 </dev/null) &
  LAST_PID=$!
}

# Waits until the log has a line matching pattern after byte offset. 0/1.
wait_log() { # log offset pattern seconds
  local log=$1 offset=$2 pattern=$3 seconds=$4 _
  for _ in $(seq 1 $((seconds * 10))); do
    if tail -c +"$((offset + 1))" "$log" 2>/dev/null | grep -q "$pattern"; then return 0; fi
    sleep 0.1
  done
  return 1
}

wait_exit() { # pid seconds; SIGKILL after. 0 when it exited by itself.
  local pid=$1 seconds=$2 _
  for _ in $(seq 1 $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  return 1
}

# How a restarted process shows it is serving again.
ready_pattern() { # name
  case "$1" in
  broker) echo '"broker listening' ;;
  gateway*) echo '"listening on http' ;;
  *) echo 'serving with' ;;
  esac
}

# --- the edge (surge mode) ------------------------------------------------------
GATEWAYS=("http://127.0.0.1:$PORT")
if [ "$MODE" = surge ]; then
  # A second gateway, same environment, next port.
  gw_pid=$(cat "$RUN/gateway.pid")
  log=$DATA_DIR/log/gateway2.log
  : >"$log"
  start_like "$gw_pid" "$log" GATEWAY_LISTEN="127.0.0.1:$((PORT + 1))"
  pid=$LAST_PID
  echo "$pid" >"$RUN/gateway2.pid"
  wait_log "$log" 0 "$(ready_pattern gateway2)" 15 || {
    echo "rolling-restart: the second gateway did not start" >&2
    exit 2
  }
  GATEWAYS+=("http://127.0.0.1:$((PORT + 1))")

  NGINX=${NGINX_BIN:-$(command -v nginx || true)}
  [ -n "$NGINX" ] || { [ -x build/deploy-tools/root/usr/sbin/nginx ] && NGINX=build/deploy-tools/root/usr/sbin/nginx; }
  if [ -n "$NGINX" ]; then
    edge=$OUT/edge
    mkdir -p "$edge"
    # compose/nginx.conf with local addresses and paths, the two gateways
    # as the upstream, and rate limits raised far above this load (every
    # client here is 127.0.0.1).
    sed -e "s|/var/cache/nginx/media|$edge/cache|" \
      -e "s|^pid .*|pid $edge/nginx.pid;|" \
      -e "s|^http {|http {\n    client_body_temp_path $edge/body; proxy_temp_path $edge/proxy; fastcgi_temp_path $edge/fcgi; uwsgi_temp_path $edge/uwsgi; scgi_temp_path $edge/scgi;|" \
      -e "s|        server gateway:8080 resolve max_fails=0;|        server 127.0.0.1:$PORT max_fails=0;\n        server 127.0.0.1:$((PORT + 1)) max_fails=0;|" \
      -e "s|^    resolver .*||" \
      -e "s|listen 8080 default_server;|listen 127.0.0.1:$EDGE_PORT default_server;|" \
      -e "s|access_log /dev/stdout json;|access_log $edge/access.log json;|" \
      -e "s|rate=50r/s|rate=100000r/s|; s|rate=10r/m|rate=100000r/m|; s|rate=2r/s|rate=100000r/s|" \
      compose/nginx.conf >"$edge/nginx.conf"
    "$NGINX" -p "$edge/" -c "$edge/nginx.conf" -e "$edge/error.log" -g 'daemon off;' &
    EDGE_PID=$!
    for _ in $(seq 1 50); do
      curl -fsS -o /dev/null "http://127.0.0.1:$EDGE_PORT/edge-health" 2>/dev/null && break
      sleep 0.1
    done
    if curl -fsS -o /dev/null "http://127.0.0.1:$EDGE_PORT/healthz" 2>/dev/null; then
      GATEWAYS=("http://127.0.0.1:$EDGE_PORT")
      echo "rolling-restart: edge: nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') on :$EDGE_PORT -> gateways :$PORT, :$((PORT + 1))"
    else
      echo "rolling-restart: nginx did not start ($edge/error.log); clients fail over themselves" >&2
      kill "$EDGE_PID" 2>/dev/null
      EDGE_PID=""
    fi
  else
    echo "rolling-restart: no nginx binary; clients fail over between the gateways like compose/nginx.conf"
  fi
fi

# --- load clients -----------------------------------------------------------------
# One request. Logs "ms client method route status" and sets STATUS/BODY.
# With several gateway URLs (surge mode without nginx) a refused connection
# goes to the next one, and so does a 503 for a GET (proxy_next_upstream).
# A connection refused by every gateway (stop-start of the only gateway: it
# stops listening first, docs/operations.md) is tried again every 0.1 s for
# up to REFUSED_RETRY_S (15) seconds, for every method: a refused
# connection carried no request, which is what any client or balancer
# relies on. Nothing else is retried: a reset or timeout after the request
# was sent, or any HTTP status, counts as it came.
request() { # client method route path [json]
  local client=$1 method=$2 route=$3 path=$4 json=${5:-}
  local -a args=(-s -o "$BODY_FILE" -w '%{http_code}' --max-time 15 -X "$method")
  [ -n "${TOKEN:-}" ] && args+=(-H "Authorization: Bearer $TOKEN")
  [ -n "$json" ] && args+=(-H 'Content-Type: application/json' --data "$json")
  local tries=${#GATEWAYS[@]} i base code rc refused_until
  refused_until=$(($(now_ms) + ${REFUSED_RETRY_S:-15} * 1000))
  while true; do
    for ((i = 0; i < tries; i++)); do
      base=${GATEWAYS[$(((NEXT_GATEWAY + i) % tries))]}
      code=$(curl "${args[@]}" "$base$path" 2>/dev/null)
      rc=$?
      [ -n "$code" ] || code=000
      if [ "$rc" = 7 ] || { [ "$code" = 503 ] && [ "$method" = GET ]; }; then continue; fi
      break
    done
    { [ "$rc" = 7 ] && [ "$(now_ms)" -lt "$refused_until" ]; } || break
    echo "$(now_ms) $client $method $route" >>"$OUT/client-$client.refused"
    sleep 0.1
  done
  NEXT_GATEWAY=$((NEXT_GATEWAY + 1))
  STATUS=$code
  [ "$rc" = 0 ] || STATUS="000"
  BODY=$(cat "$BODY_FILE" 2>/dev/null)
  echo "$(now_ms) $client $method $route $STATUS" >>"$LOG"
}

client_loop() { # client number
  local c=$1 round=0 user="" users=0 value
  LOG=$OUT/client-$c.log
  BODY_FILE=$OUT/client-$c.body
  NEXT_GATEWAY=$c
  : >"$LOG"
  : >"$OUT/client-$c.writes"
  while [ ! -e "$STOP_FLAG" ]; do
    if [ -z "$user" ] || [ $((round % 15)) = 0 ]; then
      local candidate="rr${c}u${users}p$$"
      users=$((users + 1))
      TOKEN=""
      request "$c" POST "POST /auth/register" /api/v1/auth/register \
        "{\"username\":\"$candidate\",\"email\":\"$candidate@example.com\",\"password\":\"rolling-restart-pw\"}"
      if [ "$STATUS" = 201 ]; then
        user=$candidate
        TOKEN=$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' <<<"$BODY")
        echo "REG $user $TOKEN" >>"$OUT/client-$c.writes"
      elif [ -z "$user" ]; then
        sleep 0.2
        continue
      else
        # keep the previous user and its token
        TOKEN=$(awk -v u="$user" '$1 == "REG" && $2 == u {t = $3} END {print t}' "$OUT/client-$c.writes")
      fi
    fi
    round=$((round + 1))
    request "$c" GET "GET /me" /api/v1/me
    value="c${c}r${round}"
    echo "TRY $user $value" >>"$OUT/client-$c.writes"
    request "$c" PATCH "PATCH /me" /api/v1/me "{\"bio\":\"$value\"}"
    [ "$STATUS" = 200 ] && echo "ACK $user $value" >>"$OUT/client-$c.writes"
    case $((round % 6)) in
    0) request "$c" GET "GET /users/{u}/followers" "/api/v1/users/$user/followers" ;;
    1) request "$c" GET "GET /users/{u}/posts" "/api/v1/users/$user/posts" ;;
    2) request "$c" GET "GET /feed" /api/v1/feed ;;
    3) request "$c" GET "GET /search/users" "/api/v1/search/users?q=$user" ;;
    4) request "$c" GET "GET /conversations" /api/v1/conversations ;;
    5) request "$c" GET "GET /notifications/unread_count" /api/v1/notifications/unread_count ;;
    esac
  done
}

for c in $(seq 1 "$CLIENTS"); do
  client_loop "$c" &
  CLIENT_PIDS+=($!)
done
sleep "$WARMUP"
# WARMUP is a minimum: on a slow machine some routes (one read of six per
# round) may not have come up yet; wait (up to 30 s more) until each of the
# nine routes has succeeded once, so every route is counted.
for _ in $(seq 1 300); do
  ok_routes=$(cat "$OUT"/client-*.log 2>/dev/null | awk '$NF ~ /^2/ { print $4, $5 }' | sort -u | wc -l)
  [ "$ok_routes" -ge 9 ] && break
  sleep 0.1
done
WARMUP_END=$(now_ms)

# --- restarts ---------------------------------------------------------------------
restart() { # name
  local name=$1 pidfile=$RUN/$1.pid old new holder log offset started ready_at clean=yes
  old=$(cat "$pidfile")
  log=$DATA_DIR/log/$name.log
  offset=$(stat -c %s "$log")
  started=$(now_ms)
  if [ "$MODE" = surge ] && [ "$name" != broker ] && [ "${name#gateway}" = "$name" ]; then
    start_saved "$name" "$log"
    new=$LAST_PID
    if ! wait_log "$log" "$offset" "$(ready_pattern "$name")" 30; then
      echo "rolling-restart: the new $name did not start" >&2
    fi
    echo "$new" >"$pidfile"
    kill -TERM "$old"
    wait_exit "$old" 15 || clean="no (SIGKILL after 15 s)"
    ready_at=$(now_ms)
  else
    sleep 600 &
    holder=$!
    HOLDERS+=("$holder")
    echo "$holder" >"$pidfile"
    kill -TERM "$old"
    wait_exit "$old" 15 || clean="no (SIGKILL after 15 s)"
    offset=$(stat -c %s "$log")
    # The old process is gone: start from what save_process kept of it.
    start_saved "$name" "$log"
    new=$LAST_PID
    echo "$new" >"$pidfile"
    kill "$holder" 2>/dev/null
    wait_log "$log" "$offset" "$(ready_pattern "$name")" 30 ||
      echo "rolling-restart: the new $name did not start" >&2
    ready_at=$(now_ms)
  fi
  echo "$name $started $ready_at $old $new clean=$clean" >>"$OUT/restarts.log"
  printf '  %-13s restarted in %5d ms (old pid %s exited cleanly: %s)\n' "$name" $((ready_at - started)) "$old" "$clean"
}

# Saves a process's environment and command before it is stopped, so the
# copy can be started after it is gone.
save_process() { # name
  local name=$1 pid
  pid=$(cat "$RUN/$name.pid")
  cp "/proc/$pid/environ" "$OUT/$name.environ"
  cp "/proc/$pid/cmdline" "$OUT/$name.cmdline"
  readlink "/proc/$pid/cwd" >"$OUT/$name.cwd"
}
start_saved() { # name log
  local name=$1 log=$2
  local -a environ cmdline
  mapfile -d '' environ <"$OUT/$name.environ"
  mapfile -d '' cmdline <"$OUT/$name.cmdline"
  (cd "$(cat "$OUT/$name.cwd")" && exec env -i "${environ[@]}" "${cmdline[@]}" >>"$log" 2>&1 </dev/null) &
  LAST_PID=$!
}

ORDER=()
for f in "$RUN"/*.pid; do
  n=$(basename "$f" .pid)
  case "$n" in supervisor | broker | gateway | gateway2) ;; *) ORDER+=("$n") ;; esac
done
ORDER+=(broker gateway)
[ -f "$RUN/gateway2.pid" ] && ORDER+=(gateway2)
echo "rolling-restart: load running ($CLIENTS clients); restarting: ${ORDER[*]}"
for name in "${ORDER[@]}"; do
  save_process "$name"
  restart "$name"
  sleep "$PAUSE"
done
sleep 3
touch "$STOP_FLAG"
wait "${CLIENT_PIDS[@]}" 2>/dev/null
CLIENT_PIDS=()

# --- results ------------------------------------------------------------------------
cat "$OUT"/client-*.log | sort -n >"$OUT/requests.log"
# The status each route answered most during the warm-up is its "ok".
awk -v end="$WARMUP_END" '$1 < end { route = $4 " " $5; n[route " " $NF]++ }
  END { for (k in n) print n[k], k }' "$OUT/requests.log" |
  sort -k2,3 -k1,1nr | awk '{ route = $2 " " $3; if (!(route in seen)) { seen[route] = 1; print route, $4 } }' \
  >"$OUT/baseline.txt"

# Lost writes: the final bio of each user, and every registered user.
LOST=0
LOST_LINES=()
ACKED_PATCHES=0
ACKED_REGS=0
for writes in "$OUT"/client-*.writes; do
  while read -r kind user token; do
    [ "$kind" = REG ] || continue
    ACKED_REGS=$((ACKED_REGS + 1))
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PORT/api/v1/users/$user")
    if [ "$code" != 200 ]; then
      LOST=$((LOST + 1))
      LOST_LINES+=("registration of $user acknowledged, GET /users/$user -> $code")
    fi
    # The final value must be the last acknowledged one or one attempted
    # after it (an attempt without an answer may have been applied).
    last_ack_line=$(grep -n "^ACK $user " "$writes" | tail -n 1 | cut -d: -f1)
    [ -n "$last_ack_line" ] || continue
    ACKED_PATCHES=$((ACKED_PATCHES + $(grep -c "^ACK $user " "$writes")))
    allowed=$(tail -n +"$last_ack_line" "$writes" | awk -v u="$user" '($1 == "ACK" || $1 == "TRY") && $2 == u {print $3}')
    bio=$(curl -s --max-time 10 -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/me" |
      sed -n 's/.*"bio":"\([^"]*\)".*/\1/p')
    if ! grep -qx "$bio" <<<"$allowed"; then
      LOST=$((LOST + 1))
      LOST_LINES+=("$user: last acknowledged bio $(sed -n 1p <<<"$allowed"), GET /me says '${bio}'")
    fi
  done <"$writes"
done

{
  echo "rolling-restart MODE=$MODE clients=$CLIENTS gateways=${GATEWAYS[*]}"
  echo "baseline (status each route gave during the warm-up):"
  sed 's/^/  /' "$OUT/baseline.txt"
  awk -v wend="$WARMUP_END" -v restarts="$OUT/restarts.log" -v baseline="$OUT/baseline.txt" '
    BEGIN {
      while ((getline line < baseline) > 0) { split(line, f, " "); ok[f[1] " " f[2]] = f[3] }
      nr = 0
      while ((getline line < restarts) > 0) { split(line, f, " "); nr++; rname[nr] = f[1]; rfrom[nr] = f[2]; rto[nr] = f[3] }
    }
    $1 >= wend {
      route = $4 " " $5
      if (!(route in ok) || ok[route] !~ /^2/) { skipped[route]++; next }
      total++
      if ($NF == ok[route]) next
      failed++
      where = "outside any restart"
      for (i = 1; i <= nr; i++) if ($1 >= rfrom[i] - 200 && $1 <= rto[i] + 3000) { where = "during " rname[i]; break }
      by[where " | " route " -> " $NF]++
      writes += ($3 != "GET")
    }
    END {
      printf "after the warm-up: %d requests, %d failed (%.2f%%), %d of them writes\n", total, failed, total ? 100 * failed / total : 0, writes
      for (k in by) printf "  %5d  %s\n", by[k], k | "sort -t\"|\" -k1,1 -k2"
      close("sort -t\"|\" -k1,1 -k2")
      for (r in skipped) printf "  not counted (no success in the warm-up): %s (%d requests)\n", r, skipped[r]
    }' "$OUT/requests.log"
  refused=$(cat "$OUT"/client-*.refused 2>/dev/null | wc -l)
  echo "connections refused by every gateway and tried again (no request sent): $refused"
  if [ "$refused" -gt 0 ]; then
    cat "$OUT"/client-*.refused | awk '{ n[$3 " " $4 " " $5]++ } END { for (k in n) printf "  %5d  %s\n", n[k], k }'
  fi
  echo "writes acknowledged: $ACKED_REGS registrations, $ACKED_PATCHES PATCH /me; lost: $LOST"
  for line in "${LOST_LINES[@]}"; do echo "  lost: $line"; done
  echo "restarts (name, ms from SIGTERM/start to serving again):"
  awk '{ printf "  %-13s %6d ms  %s\n", $1, $3 - $2, $6 }' "$OUT/restarts.log"
} | tee "$OUT/summary.txt"

if grep -q ' 0 failed' "$OUT/summary.txt" && [ "$LOST" = 0 ]; then
  echo "rolling-restart: passed (no failed request, no lost write)"
  exit 0
fi
echo "rolling-restart: FAILED requests or lost writes (see $OUT/summary.txt)"
exit 1
