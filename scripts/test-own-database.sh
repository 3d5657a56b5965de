#!/usr/bin/env bash
# test-own-database.sh: one service on its own database (docs/operations.md,
# "A service on its own database"). Run by `make test` as the check
# deploy/media-on-own-database; by hand: bash scripts/test-own-database.sh
#
# Two private Postgres clusters (scripts/pg.sh, PG_FAST=1): the first on
# 127.0.0.1:18601 for identity, graph and feed, the second on
# 127.0.0.1:18602 for media alone; each service gets its own DATABASE_URL
# and nothing else tells it where the others keep their data.
# Through the gateway (127.0.0.1:18606; broker on 18603-18605): two users
# register, the author posts a JPEG (made with `vips gaussnoise`), the
# follower follows (the post arrives by feed's backfill), the author posts
# again (it arrives by fan-out), and both posts must show in the follower's
# feed, which feed builds from its own schema plus media's posts (RPC).
# Then: schema `media` exists in the second cluster only and holds both
# posts; identity, graph and feed exist in the first only.
#
# Everything started is stopped and both clusters destroyed on every exit
# path (trap). Every wait is bounded; the whole run takes ~15 s.
# Exit 0 when every check passed; the logs stay in build/own-db/ on failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
BIN=${BIN_DIR:-build/bin}
WORK=$ROOT/build/own-db
PG1_PORT=18601
PG2_PORT=18602
BROKER_PORT=18603 # events: +1 (publishers), +2 (subscribers)
GW_PORT=18606
BASE=http://127.0.0.1:$GW_PORT/api/v1
export PG_FAST=1

PIDS=()
FAILED=0
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  # SIGTERM in reverse start order (gateway first, broker last), then
  # SIGKILL whatever is still there after 5 s.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  bash scripts/pg.sh destroy "$WORK/pg1" >/dev/null 2>&1
  bash scripts/pg.sh destroy "$WORK/pg2" >/dev/null 2>&1
  if [ $rc -eq 0 ] && [ $FAILED -eq 0 ]; then rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAIL: $*"
  FAILED=$((FAILED + 1))
}
die() {
  echo "FAIL: $*"
  for f in "$WORK"/log/*.log; do
    [ -f "$f" ] || continue
    echo "--- $(basename "$f") (last lines)"
    tail -n 8 "$f"
  done
  exit 1
}
ok() { echo "ok: $*"; }

# --- build, fresh state, two clusters ------------------------------------------
make -s -j2 "$BIN/broker" "$BIN/gateway" "$BIN/identity" "$BIN/graph" "$BIN/media" "$BIN/feed" ||
  die "build failed"
bash scripts/pg.sh destroy "$WORK/pg1" >/dev/null 2>&1
bash scripts/pg.sh destroy "$WORK/pg2" >/dev/null 2>&1
rm -rf "$WORK"
mkdir -p "$WORK/log" "$WORK/media"
bash scripts/pg.sh start "$WORK/pg1" $PG1_PORT >"$WORK/log/pg1.log" 2>&1 || die "cluster 1 did not start"
bash scripts/pg.sh start "$WORK/pg2" $PG2_PORT >"$WORK/log/pg2.log" 2>&1 || die "cluster 2 did not start"
DB1=postgresql://app@127.0.0.1:$PG1_PORT/app
DB2=postgresql://app@127.0.0.1:$PG2_PORT/app
ok "clusters on :$PG1_PORT and :$PG2_PORT"

# --- the system: explicit environment per program ----------------------------------
COMMON=(
  "PATH=$PATH"
  "BROKER_URL=tcp://127.0.0.1:$BROKER_PORT"
  "EVENTS_PUB_URL=tcp://127.0.0.1:$((BROKER_PORT + 1))"
  "EVENTS_SUB_URL=tcp://127.0.0.1:$((BROKER_PORT + 2))"
  "JWT_SECRET=own-database-test-jwt-secret-0123456789abcdef"
  "CURSOR_SECRET=own-database-test-cursor-secret"
  "SCHEMAS_DIR=$ROOT/schemas"
  "MEDIA_DIR=$WORK/media"
  "WORKERS=2"
  "LOG_LEVEL=info"
)
start() { # name, VAR=value...
  local name=$1
  shift
  env -i "${COMMON[@]}" "$@" "$BIN/$name" >"$WORK/log/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
}
start broker
start identity "DATABASE_URL=$DB1"
start graph "DATABASE_URL=$DB1"
start feed "DATABASE_URL=$DB1"
start media "DATABASE_URL=$DB2"
start gateway "GATEWAY_LISTEN=127.0.0.1:$GW_PORT" "AUTH_RATE_LIMIT_PER_MIN=0" \
  "GATEWAY_SERVICES=identity,graph,media,feed"

ready=0
for _ in $(seq 1 150); do # 30 s
  if curl -fsS -o /dev/null "http://127.0.0.1:$GW_PORT/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a program exited while starting"; done
  sleep 0.2
done
[ $ready = 1 ] || die "the gateway's /readyz did not answer 200 within 30 s"
ok "broker, identity, graph, feed, gateway on cluster 1, media on cluster 2: ready"

# --- requests through the gateway -------------------------------------------------
# curl: prints the body, then a last line with the status.
req() { # method path token [curl args...]
  local method=$1 path=$2 token=$3
  shift 3
  local auth=()
  [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
  curl -sS --max-time 10 -X "$method" "${auth[@]}" -w '\n%{http_code}' "$@" "$BASE$path"
}
status_of() { tail -n 1 <<<"$1"; }
body_of() { sed '$d' <<<"$1"; }
field() { # json name: the first string value of "name" in the text
  grep -o "\"$2\":\"[^\"]*\"" <<<"$1" | head -n 1 | sed 's/^"[^"]*":"//; s/"$//'
}

register() { # username -> sets TOKEN
  local r
  r=$(req POST /auth/register "" -H 'Content-Type: application/json' \
    --data "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"secret-pass-1\"}")
  [ "$(status_of "$r")" = 201 ] || die "register $1: $(status_of "$r") $(body_of "$r")"
  TOKEN=$(field "$(body_of "$r")" access_token)
  [ -n "$TOKEN" ] || die "register $1: no access_token"
}
register author
AUTHOR=$TOKEN
register reader
READER=$TOKEN
ok "two users registered"

vips gaussnoise "$WORK/photo.jpg" 64 48 || die "vips could not make a JPEG"
post() { # caption -> sets POST_ID
  local r
  r=$(req POST /posts "$AUTHOR" -F "image=@$WORK/photo.jpg;type=image/jpeg" -F "caption=$1")
  [ "$(status_of "$r")" = 201 ] || die "post: $(status_of "$r") $(body_of "$r")"
  POST_ID=$(field "$(body_of "$r")" id)
  [ -n "$POST_ID" ] || die "post: no id"
}
post "before the follow"
POST1=$POST_ID
r=$(req POST /users/author/follow "$READER")
[ "$(status_of "$r")" = 200 ] || die "follow: $(status_of "$r") $(body_of "$r")"
post "after the follow"
POST2=$POST_ID
ok "posts $POST1 and $POST2 created (media on cluster 2), reader follows author (graph on cluster 1)"

# Both posts reach the feed: feed learns of them from events and shows them
# through media.
found=0
for _ in $(seq 1 75); do # 15 s
  r=$(req GET /feed "$READER")
  if [ "$(status_of "$r")" = 200 ] && grep -q "\"id\":\"$POST1\"" <<<"$r" && grep -q "\"id\":\"$POST2\"" <<<"$r"; then
    found=1
    break
  fi
  sleep 0.2
done
if [ $found = 1 ]; then
  ok "both posts are in the reader's feed"
else
  fail "the reader's feed lacks a post after 15 s: $(status_of "$r") $(body_of "$r" | head -c 400)"
fi
r=$(req GET "/posts/$POST1" "$READER")
if [ "$(status_of "$r")" = 200 ] && url=$(field "$(body_of "$r")" url) && [ -n "$url" ] &&
  { [[ $url == http* ]] || url=http://127.0.0.1:$GW_PORT$url; } &&
  [ "$(curl -sS -o /dev/null -w '%{http_code}' "$url")" = 200 ]; then
  ok "the post and its image are served"
else
  fail "GET /posts/$POST1 or its image: $(status_of "$r") $(body_of "$r" | head -c 300)"
fi

# --- where the data lives -----------------------------------------------------------
schemas() { # port
  psql -h 127.0.0.1 -p "$1" -U app app -tAq -v ON_ERROR_STOP=1 -c \
    "select string_agg(schema_name, ',' order by schema_name) from information_schema.schemata
     where schema_name in ('identity', 'graph', 'feed', 'media')"
}
s1=$(schemas $PG1_PORT) || die "psql on cluster 1 failed"
s2=$(schemas $PG2_PORT) || die "psql on cluster 2 failed"
if [ "$s1" = "feed,graph,identity" ]; then
  ok "cluster 1 has schemas $s1 and no media"
else
  fail "cluster 1 has schemas '$s1' (expected feed,graph,identity)"
fi
if [ "$s2" = "media" ]; then
  ok "cluster 2 has schema media only"
else
  fail "cluster 2 has schemas '$s2' (expected media)"
fi
n=$(psql -h 127.0.0.1 -p $PG2_PORT -U app app -tAq -c \
  "select count(*) from media.posts where id in ($POST1, $POST2)" 2>&1)
if [ "$n" = 2 ]; then
  ok "both posts are rows of media.posts in cluster 2"
else
  fail "media.posts in cluster 2: '$n' of the 2 posts"
fi

if [ $FAILED -gt 0 ]; then
  echo "$FAILED check(s) failed; logs in $WORK/log/"
  exit 1
fi
echo "PASS: media on its own database"
