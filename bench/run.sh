#!/usr/bin/env bash
# make bench: a load benchmark of the running system, written to
# docs/benchmarks.md.
#
#   1. starts the embedded default (scripts/run.sh) on BENCH_PORT (18080) with
#      its own data folder, the auth rate limit off; or, with BENCH_URL set,
#      targets a system that is already running;
#   2. seeds it (tools/bench_seed.c) at BENCH_SCALE:
#        tiny     200 users, 10 follows each, 1,000 posts (a quick check)
#        small    1,000 users, ~20 follows each, 10,000 posts (the default here)
#      through the public API, or
#        default  10,000 users, ~50 follows each, 100,000 posts, 1,000,000
#                 likes, 200,000 comments
#        large    100,000 users, ~30 follows each, 1,000,000 posts,
#                 2,000,000 likes, 400,000 comments
#      through the services' own seed methods (identity.seed, graph.seed,
#      media.seed; the services get *_SEED_ENABLED=1), waiting until every
#      consumer has caught up, at most BENCH_SEED_WAIT (600) s a stage (seed
#      time and catch-up per consumer go into the report). With BENCH_URL, bulk scales need BENCH_BROKER_URL and
#      BENCH_DATABASE_URL of that system, started with the seed switches on;
#      at every scale, when messaging is there, BENCH_CONVERSATIONS (200)
#      one-to-one conversations and BENCH_GROUPS (5) groups of 8 among the
#      BENCH_TOKENS users the scenarios sign in as, BENCH_MESSAGES (30)
#      messages each, through the API (conversations.txt);
#   3. runs every scenario whose endpoint exists (or only those named in
#      BENCH_SCENARIOS, e.g. "healthz feed": a partial report, for a scale
#      where one figure is wanted) with wrk: BENCH_CONNECTIONS
#      (32) keep-alive connections, BENCH_THREADS (2) threads, a warm-up of
#      BENCH_WARMUP (3s) then BENCH_DURATION (10s) measured with --latency;
#      fresh tokens of BENCH_TOKENS (200) distinct users for each scenario;
#      GET /healthz first, the gateway's own ceiling in the same run;
#      messages_list (GET /conversations/{id}/messages, a page of 20) and
#      message_send (POST /conversations/{id}/messages) as a participant of
#      the conversation (bench/lua/scenario.lua), so non-2xx counts real
#      failures, not 404s of strangers;
#      with the system started here, each scenario also gets its CPU per
#      request, process by process (bench/cpu.sh), counted from when the
#      consumers have handled the warm-up's events and no autovacuum
#      worker of the cluster runs until they have handled the run's (at
#      most BENCH_SETTLE_MAX (120) s of waiting for each; the waits go
#      into the report);
#   4. measures the time to a new post showing in a follower's feed, from
#      the start of POST /posts (image processing included) and from its
#      reply (bench_seed feedlag); and each process's peak RSS (VmHWM) and
#      RSS after the run (VmRSS), naming those over BENCH_RSS_LIMIT_MIB (64);
#   4b. with BENCH_SEARCH_SCALE=1, search at scale: seeds BENCH_SEARCH_USERS
#      (100000) users and BENCH_SEARCH_POSTS (1000000) posts straight into the
#      search schema (search.seed; the search service gets SEARCH_SEED_ENABLED=1)
#      and measures user, post and hashtag search at the service, through the
#      broker (tools/search_bench.c: BENCH_SEARCH_QUERIES (2000) queries per
#      kind from BENCH_SEARCH_THREADS (2) threads); with BENCH_URL, give
#      BENCH_BROKER_URL too;
#   5. prints the table and writes docs/benchmarks.md (BENCH_WRITE=0 skips).
#
# Files: BENCH_OUT (build/bench: wrk logs, seed files, benchmarks.md, the
# report before it is copied into docs/) and BENCH_VAR (build/bench-var: the
# system's data folder, wiped at the start). Ports: BENCH_PORT (gateway),
# +10 (Postgres), +20..+22 (broker and events).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
: "${BENCH_PORT:=18080}" "${BENCH_SCALE:=small}" "${BENCH_CONNECTIONS:=32}" "${BENCH_THREADS:=2}"
: "${BENCH_DURATION:=10s}" "${BENCH_WARMUP:=3s}" "${BENCH_TOKENS:=200}" "${BENCH_WRITE:=1}"
: "${BENCH_SEARCH_SCALE:=0}" "${BENCH_SEARCH_USERS:=100000}" "${BENCH_SEARCH_POSTS:=1000000}"
: "${BENCH_SEARCH_QUERIES:=2000}" "${BENCH_SEARCH_THREADS:=2}" "${BENCH_SEED_WAIT:=600}"
: "${BENCH_SETTLE_MAX:=120}"
# Only the bench's own system lets search.seed write (the search service reads it).
[ "$BENCH_SEARCH_SCALE" = 1 ] && export SEARCH_SEED_ENABLED=1
OUT=${BENCH_OUT:-$ROOT/build/bench}
VAR=${BENCH_VAR:-$ROOT/build/bench-var}
: "${BENCH_CONVERSATIONS:=200}" "${BENCH_GROUPS:=5}" "${BENCH_MESSAGES:=30}" "${BENCH_RSS_LIMIT_MIB:=64}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SEED="$ROOT/build/bin/bench_seed"
URL=${BENCH_URL:-http://127.0.0.1:$BENCH_PORT}

BULK=0
case "$BENCH_SCALE" in
  tiny) USERS=200; FOLLOWS=10; POSTS=1000; LIKES=5000; COMMENTS=1000 ;;
  small) USERS=1000; FOLLOWS=20; POSTS=10000; LIKES=30000; COMMENTS=5000 ;;
  default) USERS=10000; FOLLOWS=50; POSTS=100000; LIKES=1000000; COMMENTS=200000; BULK=1 ;;
  large) USERS=100000; FOLLOWS=30; POSTS=1000000; LIKES=2000000; COMMENTS=400000; BULK=1 ;;
  *) echo "bench: BENCH_SCALE must be tiny, small, default or large" >&2; exit 2 ;;
esac
# Only the bench's own system lets the seed methods write.
if [ $BULK = 1 ] && [ -z "${BENCH_URL:-}" ]; then
  export IDENTITY_SEED_ENABLED=1 GRAPH_SEED_ENABLED=1 MEDIA_SEED_ENABLED=1
fi
BROKER=${BENCH_BROKER_URL:-tcp://127.0.0.1:$((BENCH_PORT + 20))}
DATABASE=${BENCH_DATABASE_URL:-postgresql://app@127.0.0.1:$((BENCH_PORT + 10))/app}

started=0
cleanup() {
  if [ $started -eq 1 ]; then DATA_DIR="$VAR" bash scripts/stop.sh >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ -z "${BENCH_URL:-}" ]; then
  DATA_DIR="$VAR" bash scripts/stop.sh >/dev/null 2>&1 || true
  [ -d "$VAR/pg" ] && bash scripts/pg.sh destroy "$VAR/pg" >/dev/null 2>&1 || true
  rm -rf "$VAR"
  PORT=$BENCH_PORT PG_PORT=$((BENCH_PORT + 10)) BROKER_PORT=$((BENCH_PORT + 20)) DATA_DIR="$VAR" \
    AUTH_RATE_LIMIT_PER_MIN=0 LOG_LEVEL=warn \
    setsid bash scripts/run.sh >"$OUT/system.log" 2>&1 &
  started=1
  for _ in $(seq 1 150); do
    curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "$URL/readyz" >/dev/null || { echo "bench: the system did not start" >&2; cat "$OUT/system.log" >&2; exit 1; }
fi

# A 1080 px JPEG of camera-like noise (a worst case for the encoder).
JPEG="$OUT/photo-1080.jpg"
[ -s "$JPEG" ] || vips gaussnoise "$OUT/noise.v" 1080 1080 --sigma 40 --mean 128 >/dev/null &&
  vips jpegsave "$OUT/noise.v" "$JPEG" --Q 85 >/dev/null 2>&1 || true

available() { # method path [body]: the route exists (not the gateway's "no route" 404)
  local body
  body=$(curl -s -X "$1" "$URL$2")
  ! echo "$body" | grep -q '"message":"no such endpoint'
}

IMAGE_ARGS=()
if ! curl -s -X POST "$URL/api/v1/posts" | grep -q '"message":"no such endpoint"'; then
  IMAGE_ARGS=(--image "$JPEG")
fi
# Conversations only where messaging answers (else --conversations 0 makes none).
CONV_ARGS=(--conversations 0 --groups 0)
if available GET /api/v1/conversations; then
  CONV_ARGS=(--conversations "$BENCH_CONVERSATIONS" --groups "$BENCH_GROUPS" --messages "$BENCH_MESSAGES")
fi

echo "bench: seeding ($BENCH_SCALE)"
seed_start=$(date +%s)
SEED_HOW="through the API"
if [ $BULK = 1 ]; then
  [ ${#IMAGE_ARGS[@]} -gt 0 ] || { echo "bench: bulk seeding needs POST /posts" >&2; exit 1; }
  SEED_HOW="through the services' seed methods"
  "$SEED" --url "$URL" --out "$OUT" --users $USERS --follows $FOLLOWS --posts $POSTS \
    --likes $LIKES --comments $COMMENTS --tokens "$BENCH_TOKENS" --threads 8 "${IMAGE_ARGS[@]}" "${CONV_ARGS[@]}" \
    --broker "$BROKER" --database "$DATABASE" --wait-max "$BENCH_SEED_WAIT" bulk 2> >(tee "$OUT/seed-stages.txt" >&2) | tee "$OUT/seed.txt" ||
    { echo "bench: bulk seeding failed" >&2; exit 1; }
else
  "$SEED" --url "$URL" --out "$OUT" --users $USERS --follows $FOLLOWS --posts $POSTS \
    --likes $LIKES --comments $COMMENTS --tokens "$BENCH_TOKENS" --threads 16 "${IMAGE_ARGS[@]}" "${CONV_ARGS[@]}" seed 2>&1 | tee "$OUT/seed-stages.txt" || true
fi
seed_seconds=$(( $(date +%s) - seed_start ))

to_ms() { # "1.23ms" | "850.00us" | "1.02s" -> milliseconds
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else printf "%s", v }'
}

ROWS=()
CPU_ROWS=()
HEALTHZ_RPS=0
SETTLED=()
# Waits, at most BENCH_SETTLE_MAX seconds, while an autovacuum worker of
# the cluster we started runs. The seed and the write scenarios leave big
# tables for autovacuum, and a worker vacuuming one takes most of a core:
# whichever scenario runs beside it then shows that as its own Postgres
# time (session 8: GET /search/users at 11.8 ms of CPU a request in the
# run, 5.1 ms on the same system minutes later). Autovacuum that a
# scenario's own writes start during its run stays in its numbers.
settle() { # name
  [ $started -eq 1 ] && [ -f "$VAR/pg/postmaster.pid" ] || return 0
  local pm waited=0
  pm=$(head -1 "$VAR/pg/postmaster.pid")
  while [ $waited -lt "$BENCH_SETTLE_MAX" ] && pgrep -P "$pm" -f 'autovacuum worker' >/dev/null; do
    sleep 1
    waited=$((waited + 1))
  done
  [ $waited -gt 0 ] && SETTLED+=("$1 ${waited} s")
  return 0
}
# How many events the consumers have not handled yet: for each row of each
# consumer's event_offsets, how far its producer's outbox is ahead, plus the
# outbox rows no relay has published yet. The query is built once, from the
# schemas that hold those tables.
EVENTS_BEHIND_SQL=""
events_behind() {
  if [ -z "$EVENTS_BEHIND_SQL" ]; then
    EVENTS_BEHIND_SQL=$(psql "$DATABASE" -Atc "
      WITH t AS (SELECT n.nspname AS s, c.relname AS r FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname IN ('outbox', 'event_offsets'))
      SELECT 'SELECT (SELECT coalesce(sum(greatest(p.top - o.last_seq, 0)), 0) FROM ('
        || (SELECT string_agg(format('SELECT producer, last_seq FROM %I.event_offsets', s),
              ' UNION ALL ') FROM t WHERE r = 'event_offsets')
        || ') o JOIN (' || (SELECT string_agg(format('SELECT %L AS producer,'
              ' coalesce(max(seq), 0) AS top FROM %I.outbox', s, s), ' UNION ALL ')
              FROM t WHERE r = 'outbox')
        || ') p USING (producer)) + ' || (SELECT string_agg(format('(SELECT count(*)'
              ' FROM %I.outbox WHERE seq IS NULL)', s), ' + ') FROM t WHERE r = 'outbox')" \
      2>/dev/null) || return 1
  fi
  psql "$DATABASE" -Atc "$EVENTS_BEHIND_SQL" 2>/dev/null
}
# After a scenario's run: waits, at most BENCH_SETTLE_MAX seconds, until
# every consumer has handled the events the run made, so that the work they
# cause is counted in the CPU of the scenario that caused it (a like's
# notification, feed and search writes) and not in the next one's.
DRAINED=()
drain() { # name, or "" for a wait that is not reported
  [ $started -eq 1 ] || return 0
  local waited=0 behind
  while [ $waited -lt "$BENCH_SETTLE_MAX" ]; do
    behind=$(events_behind) || return 0
    [ "${behind:-0}" -gt 0 ] 2>/dev/null || break
    sleep 1
    waited=$((waited + 1))
  done
  [ $waited -gt 0 ] && [ -n "$1" ] && DRAINED+=("$1 ${waited} s")
  return 0
}
run_scenario() { # name, label, method+path for the probe
  local name=$1 label=$2 log="$OUT/wrk-$1.txt" rps p50 p90 p99 errors ratio
  if [ -n "${BENCH_SCENARIOS:-}" ] && [[ " $BENCH_SCENARIOS " != *" $name "* ]]; then return 0; fi
  "$SEED" --url "$URL" --out "$OUT" --users $USERS --tokens "$BENCH_TOKENS" --threads 8 tokens >/dev/null 2>&1 || true
  local script=(-s bench/lua/scenario.lua "$URL" -- "$name" "$OUT" "$JPEG")
  [ "$name" = healthz ] && script=("$URL/healthz")
  wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_WARMUP" "${script[@]}" >/dev/null 2>&1 || true
  # The warm-up's events and what earlier steps left to autovacuum are not
  # this scenario's to count.
  drain "" && settle "$name"
  [ $started -eq 1 ] && bash bench/cpu.sh snapshot "$VAR" >"$OUT/cpu-$name.before" 2>/dev/null
  wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_DURATION" --timeout 10s --latency "${script[@]}" >"$log" 2>&1 || true
  if [ $started -eq 1 ]; then
    # CPU ms per request, process by process (bench/cpu.sh): what a req/s
    # ceiling is made of, the events' consumers included.
    drain "$name"
    bash bench/cpu.sh snapshot "$VAR" >"$OUT/cpu-$name.after" 2>/dev/null
    local served cpu
    served=$(awk '/requests in/ {print $1; exit}' "$log")
    cpu=$(bash bench/cpu.sh report "$OUT/cpu-$name.before" "$OUT/cpu-$name.after" "${served:-0}" 2>/dev/null |
      awk '$1 ~ /^postgres\// { if ($2 >= 0.005) { sub(/^postgres\//, "", $1)
                                   pg = pg (pg ? ", " : "") $1 " " $2 }; next }
           $2 >= 0.005 { total += $2; parts = parts (parts ? ", " : "") $1 " " $2 }
           END { if (parts) printf "%.2f (%s)%s", total, parts, pg ? "; postgres by service: " pg : "" }')
    [ -n "$cpu" ] && CPU_ROWS+=("| $label | $cpu |")
  fi
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$log")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$log")")
  p90=$(to_ms "$(awk '$1 == "90%" {print $2}' "$log")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$log")")
  errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$log"); errors=${errors:-0}
  local socket_errors
  socket_errors=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$log"); socket_errors=${socket_errors:-0}
  [ "$name" = healthz ] && HEALTHZ_RPS=${rps:-0}
  ratio=$(awk -v r="${rps:-0}" -v h="$HEALTHZ_RPS" 'BEGIN { if (h > 0) printf "%.1f%%", 100 * r / h; else print "-" }')
  # No request finished within the run (say uploads queued behind the
  # warm-up's): zeros would read as "fast and flawless", so say so instead.
  if [ "$(awk '/requests in/ {print $1; exit}' "$log")" = 0 ]; then
    rps="0 (none completed in $BENCH_DURATION)"; p50=-; p90=-; p99=-
  fi
  ROWS+=("| $label | ${rps:-0} | $ratio | $p50 | $p90 | $p99 | $errors | $socket_errors |")
  printf 'bench: %-34s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s\n' "$label" "${rps:-0}" "$p50" "$p99" "$errors"
}

run_scenario healthz "GET /healthz (gateway ceiling)"
run_scenario profile "GET /users/{username}"
run_scenario me "GET /me"
if [ -s "$OUT/posts.txt" ]; then
  run_scenario post_get "GET /posts/{id}"
  run_scenario profile_posts "GET /users/{username}/posts"
  run_scenario like "POST+DELETE /posts/{id}/like"
  run_scenario comment "POST /posts/{id}/comments"
  run_scenario post_create "POST /posts (one 1080 px JPEG)"
fi
if [ -s "$OUT/conversations.txt" ]; then
  run_scenario messages_list "GET /conversations/{id}/messages"
  run_scenario message_send "POST /conversations/{id}/messages"
fi
available GET /api/v1/feed && run_scenario feed "GET /feed"
available GET "/api/v1/search/users?q=a" && run_scenario search_users "GET /search/users"
[ -s "$OUT/posts.txt" ] && available GET /api/v1/feed && run_scenario mixed "mixed 60% feed / 30% profile posts / 10% post"
run_scenario login "POST /auth/login (argon2id)"

FEEDLAG="not measured (needs the feed and media services)"
if [ ${#IMAGE_ARGS[@]} -gt 0 ] && available GET /api/v1/feed; then
  line=$("$SEED" --url "$URL" --out "$OUT" --users $USERS --samples 50 "${IMAGE_ARGS[@]}" feedlag 2>/dev/null || true)
  echo "$line" >"$OUT/feedlag.txt"
  # "feedlag samples=N p50_ms=… p99_ms=… after_reply_p50_ms=… after_reply_p99_ms=… post_p50_ms=… post_p99_ms=…"
  FEEDLAG=$(echo "$line" | awk '$1 == "feedlag" {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (v["samples"] + 0 == 0) { print "failed (no post reached the feed within 10 s)"; exit }
    printf "from the start of `POST /posts` (upload and image processing included: `POST /posts` itself took p50 %s ms, p99 %s ms) p50 %s ms, p99 %s ms; ", v["post_p50_ms"], v["post_p99_ms"], v["p50_ms"], v["p99_ms"]
    printf "from `POST /posts` returning 201 p50 %s ms, p99 %s ms; over %s posts of bench_u0, polled by a follower with `GET /feed?limit=5` every 5 ms", v["after_reply_p50_ms"], v["after_reply_p99_ms"], v["samples"] }')
  [ -n "$FEEDLAG" ] || FEEDLAG="failed (see $OUT/feedlag.txt)"
fi

SEARCH_ROWS=()
SEARCH_NOTE="not measured (\`BENCH_SEARCH_SCALE=1 make bench\` measures it)."
if [ "$BENCH_SEARCH_SCALE" = 1 ]; then
  broker=${BENCH_BROKER_URL:-}
  [ -z "$broker" ] && [ $started -eq 1 ] && broker="tcp://127.0.0.1:$((BENCH_PORT + 20))"
  if [ -z "$broker" ]; then
    SEARCH_NOTE="not measured (BENCH_URL is set: BENCH_BROKER_URL must name its broker)."
  else
    echo "bench: search at scale ($BENCH_SEARCH_USERS users, $BENCH_SEARCH_POSTS posts)"
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    "$ROOT/build/bin/search_bench" --broker "$broker" --users "$BENCH_SEARCH_USERS" \
      --posts "$BENCH_SEARCH_POSTS" --queries "$BENCH_SEARCH_QUERIES" \
      --threads "$BENCH_SEARCH_THREADS" --kinds all >"$OUT/search-scale.txt" 2>&1 || true
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    cat "$OUT/search-scale.txt"
    # "search_bench kind=K queries=N errors=E p50_ms=… p90_ms=… p99_ms=… max_ms=… qps=…"
    while read -r row; do SEARCH_ROWS+=("$row"); done < <(awk '
      $1 == "search_bench" && $2 ~ /^kind=/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        label = v["kind"]; target = "-"
        if (label == "users_prefix") { label = "user search, prefix (`search.users`)"; target = 20 }
        else if (label == "users_typo") { label = "user search, typo (`search.users`)"; target = 20 }
        else if (label == "posts") { label = "post search (`search.posts`)"; target = 50 }
        else if (label == "hashtags") { label = "hashtag prefix (`search.hashtags`)"; target = 20 }
        else if (label == "tag_posts") label = "tag page (`hashtags.posts`)"
        else if (label == "explore") label = "explore (`explore.posts`)"
        else if (label == "explore_users") label = "suggested accounts (`explore.users`)"
        met = target == "-" ? "-" : (v["errors"] == 0 && v["p99_ms"] + 0 < target ? "yes" : "no")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, v["p50_ms"], v["p90_ms"],
          v["p99_ms"], v["max_ms"], v["qps"], v["errors"], target, met
      }' "$OUT/search-scale.txt")
    seed_line=$(grep '^search_bench seed ' "$OUT/search-scale.txt" || true)
    if [ ${#SEARCH_ROWS[@]} -gt 0 ]; then
      # "search_bench seed users=U posts=P follows=F hashtags=H seeded=yes|no seconds=S"
      SEARCH_NOTE=$(echo "$seed_line" | awk '{
        for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        how = v["seeded"] == "yes" ? "written by search.seed in " v["seconds"] " s" : "seeded earlier"
        printf "%s users, %s posts, %s follows and %s hashtags in the search schema (%s)",
          v["users"], v["posts"], v["follows"], v["hashtags"], how }')
      SEARCH_NOTE="$SEARCH_NOTE; $BENCH_SEARCH_QUERIES queries per kind (after a warm-up) from $BENCH_SEARCH_THREADS threads through the broker, at the service (no gateway); load average $load_before before, $load_after after."
    else
      SEARCH_NOTE="failed (see build/bench/search-scale.txt)."
    fi
  fi
fi

# Memory of each process after the run: its peak (VmHWM) and what it holds
# now (VmRSS), which the issue's "under 64 MiB at default after the run" is about.
RSS_ROWS=()
RSS_OVER=()
if [ $started -eq 1 ]; then
  for f in "$VAR"/run/*.pid; do
    name=$(basename "$f" .pid); [ "$name" = supervisor ] && continue
    read -r hwm rss < <(awk '/^VmHWM/ {h = $2} /^VmRSS/ {r = $2} END {print h + 0, r + 0}' \
      "/proc/$(cat "$f")/status" 2>/dev/null || echo "0 0")
    over=no
    if [ $((rss / 1024)) -ge "$BENCH_RSS_LIMIT_MIB" ]; then over=yes; RSS_OVER+=("$name"); fi
    RSS_ROWS+=("| $name | $((hwm / 1024)) | $((rss / 1024)) | $over |")
  done
fi

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
REPORT="$OUT/benchmarks.md"
{
  echo "# Benchmarks"
  echo
  echo "Made by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d), commit $COMMIT$DIRTY."
  echo "Machine: $(nproc) cores ($CPU), $MEM; wrk runs on the same cores as the system."
  echo
  echo "Command: \`BENCH_SCALE=$BENCH_SCALE make bench\` = wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d$BENCH_DURATION --latency"
  echo "after a $BENCH_WARMUP warm-up, keep-alive, $BENCH_TOKENS distinct signed-in users per scenario"
  [ -n "${BENCH_SCENARIOS:-}" ] && echo "Only the scenarios BENCH_SCENARIOS=\"$BENCH_SCENARIOS\" ran (a partial report)."
  echo "(bench/lua/scenario.lua). Dataset ($BENCH_SCALE): $USERS users, ~$FOLLOWS follows each (skewed),"
  npost=$(wc -l <"$OUT/posts.txt" 2>/dev/null || echo 0)
  if [ "$npost" -gt 0 ]; then
    echo "$POSTS posts, $LIKES likes, $COMMENTS comments, seeded $SEED_HOW in ${seed_seconds}s."
  else
    echo "no posts (the media service is not there yet), seeded $SEED_HOW in ${seed_seconds}s."
  fi
  if [ -s "$OUT/conversations.txt" ]; then
    nconv=$(awk '{print $2}' "$OUT/conversations.txt" | sort -u | wc -l)
    # "seed: converse <count> in <seconds> s (<errors> errors)"
    conv_how=$(awk '$1 == "seed:" && $2 == "converse" { e = $7; sub(/^\(/, "", e)
      printf "in %s s through the API, %s errors", $5, e }' "$OUT/seed-stages.txt" 2>/dev/null || true)
    echo "Conversations: $nconv made of $BENCH_CONVERSATIONS one-to-one and $BENCH_GROUPS groups of 8"
    echo "among the $BENCH_TOKENS signed-in users, $BENCH_MESSAGES messages each (${conv_how:-through the API})."
  fi
  if [ $BULK = 1 ] && [ -s "$OUT/seed.txt" ]; then
    echo
    # "bulk: seed identity accounts=N seconds=S", "bulk: catchup STAGE CONSUMER S EVENTS"
    awk '$2 == "seed" { $1 = ""; $2 = ""; sub(/^ +/, ""); seeds = seeds (seeds ? "; " : "") $0 }
         $2 == "catchup" { if (!($3 in c)) order[++k] = $3
                           c[$3] = c[$3] (c[$3] ? ", " : "") $4 " " $5 " s"; n[$3] = $6 }
         $2 == "behind" { if (!($3 in c)) order[++k] = $3
                          c[$3] = c[$3] (c[$3] ? ", " : "") $4 " still behind after " $5 " s (" $6 " of " $7 " events)"; n[$3] = $7 }
         $2 == "total" { total = "total " $3 }
         END {
           printf "Seed calls: %s; %s. Consumers caught up after each stage\n", seeds, total
           printf "(seconds after the stage'"'"'s last write; events = the producer'"'"'s outbox so far):"
           for (i = 1; i <= k; i++) printf " %s (%s events): %s;", order[i], n[order[i]], c[order[i]]
           printf "\n"
         }' "$OUT/seed.txt"
  fi
  echo
  if [ $started -eq 1 ]; then
    settled=$(IFS=,; echo "${SETTLED[*]:-}" | sed 's/,/, /g')
    drained=$(IFS=,; echo "${DRAINED[*]:-}" | sed 's/,/, /g')
    echo "Before each measured run (after its warm-up) the consumers had handled every event, and the"
    echo "run waited for Postgres's autovacuum workers to finish (at most ${BENCH_SETTLE_MAX} s):"
    echo "${settled:-no wait was needed}. After it, the CPU count went on until every consumer had"
    echo "handled the events the run made: ${drained:-no wait was needed}."
    echo
  fi
  echo "Timings on a shared 2-core machine are noisy: compare the ratio to the"
  echo "gateway's own /healthz ceiling measured in the same run, and medians."
  echo
  echo "| scenario | req/s | of /healthz | p50 ms | p90 ms | p99 ms | non-2xx | socket errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  if [ ${#CPU_ROWS[@]} -gt 0 ]; then
    echo "CPU per request (\`bench/cpu.sh\`: utime + stime of every process of the system and of"
    echo "Postgres from the start of the measured run until the consumers had handled its events, divided"
    echo "by the requests served; wrk's own CPU is not in it)."
    echo "On $(nproc) cores this is the throughput ceiling: $(nproc) × 1000 ms ÷ the total, shared with wrk."
    echo "\"Postgres by service\" splits the postgres share by the service whose connections used it"
    echo "(each service names its sessions, \`application_name\`); the rest is Postgres's own processes."
    echo
    echo "| scenario | CPU ms per request: total (by process, 0.005 ms and up) |"
    echo "|---|---|"
    printf '%s\n' "${CPU_ROWS[@]}"
    echo
  fi
  echo "Login is bound by argon2id (19 MiB, 2 passes) by design: its req/s is for $(nproc) cores."
  echo
  echo "Post to follower's feed: $FEEDLAG."
  echo
  echo "Search at scale (\`tools/search_bench.c\`): $SEARCH_NOTE"
  if [ ${#SEARCH_ROWS[@]} -gt 0 ]; then
    echo "The seeded accounts and posts exist only in search's projections, so the one"
    echo "batch call of a page (media \`posts.batch\`, identity \`users.batch\`) hydrates nothing."
    echo
    echo "| query | p50 ms | p90 ms | p99 ms | max ms | q/s | errors | target p99 ms | met |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${SEARCH_ROWS[@]}"
  fi
  echo
  if [ ${#RSS_ROWS[@]} -gt 0 ]; then
    echo "Memory per process at the end of the run (\`/proc/<pid>/status\`: VmHWM the peak, VmRSS"
    echo "what it holds after the run), in MiB; the target is under $BENCH_RSS_LIMIT_MIB MiB after the run at \`default\`."
    if [ ${#RSS_OVER[@]} -gt 0 ]; then
      echo "Over $BENCH_RSS_LIMIT_MIB MiB after the run: $(IFS=,; echo "${RSS_OVER[*]}" | sed 's/,/, /g')."
    else
      echo "None is over $BENCH_RSS_LIMIT_MIB MiB after the run."
    fi
    echo
    echo "| process | peak RSS (VmHWM) | RSS after the run (VmRSS) | over $BENCH_RSS_LIMIT_MIB MiB after the run |"
    echo "|---|---:|---:|---|"
    printf '%s\n' "${RSS_ROWS[@]}"
  fi
} >"$REPORT"
cat "$REPORT"
if [ "$BENCH_WRITE" = 1 ]; then
  # Keep the hand-written notes below the generated part of docs/benchmarks.md.
  notes=""
  [ -f docs/benchmarks.md ] && notes=$(sed -n '/^## Notes/,$p' docs/benchmarks.md)
  {
    cat "$REPORT"
    if [ -n "$notes" ]; then echo; echo "$notes"; fi
  } >docs/benchmarks.md
fi
