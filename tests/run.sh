#!/usr/bin/env bash
# The whole test run behind `make test`:
#   1. build everything (normal build), the fuzz targets and the spec linter;
#   2. start one private Postgres for every suite (TEST_DATABASE_URL; each
#      suite makes its own schema or database inside it);
#   3. run every unit and integration suite, then the same suites built with
#      AddressSanitizer + UBSan (SKIP_SAN=1 skips), then each fuzz target for
#      FUZZ_SECONDS (default 10; SKIP_FUZZ=1 skips), then the lint checks;
#   4. print one line "N passed, M failed" over everything.
# Counting: cmocka suites count their test cases; a suite that dies before
# printing its summary counts as one failure; every other check counts one.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT="$ROOT/tests/out"
rm -rf "$OUT"; mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc)}
PASSED=0
FAILED=0
FAILURES=()

note_fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); }

# Runs a cmocka binary, adds its counts, keeps its output under tests/out/.
run_suite() { # label, binary
  local label=$1 bin=$2 log rc p f
  log="$OUT/$(echo "$label" | tr '/ ' '__').log"
  echo "== $label"
  timeout "${SUITE_TIMEOUT:-600}" "$bin" >"$log" 2>&1
  rc=$?
  p=$(grep -Eo '\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
  f=$(grep -Eo '\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  if [ "$f" -gt 0 ]; then FAILURES+=("$label ($f failed)"); fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    note_fail "$label (exit $rc without a cmocka failure: crash, sanitizer report or timeout)"
  fi
  if [ "$rc" -ne 0 ] || [ "$f" -gt 0 ]; then tail -n 30 "$log" | sed 's/^/   | /'; fi
  # A sanitizer report fails the suite even if the process exited 0.
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    note_fail "$label (sanitizer report)"
    grep -m5 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" | sed 's/^/   | /'
  fi
  echo "   $p passed, $f failed (rc $rc)"
}

check() { # label, command...
  local label=$1; shift
  echo "== $label"
  if "$@" >"$OUT/$(echo "$label" | tr '/ ' '__').log" 2>&1; then
    PASSED=$((PASSED + 1)); echo "   ok"
  else
    note_fail "$label"; tail -n 30 "$OUT/$(echo "$label" | tr '/ ' '__').log" | sed 's/^/   | /'
  fi
}

echo "== build"
if ! make -s -j"$JOBS" all >"$OUT/build.log" 2>&1; then
  cat "$OUT/build.log"; echo "0 passed, 1 failed"; exit 1
fi

# One Postgres for all suites.
PG_DIR="$ROOT/build/test-pg"
PG_PORT=${TEST_PG_PORT:-17500}
export PG_FAST=1
bash scripts/pg.sh destroy "$PG_DIR" >/dev/null 2>&1
rm -rf "$PG_DIR"
if ! bash scripts/pg.sh start "$PG_DIR" "$PG_PORT" >"$OUT/pg.log" 2>&1; then
  cat "$OUT/pg.log"; echo "0 passed, 1 failed"; exit 1
fi
export TEST_DATABASE_URL="postgresql://app@127.0.0.1:$PG_PORT/app"
trap 'bash "$ROOT/scripts/pg.sh" destroy "$PG_DIR" >/dev/null 2>&1' EXIT

run_tree() { # build dir, label prefix
  local b=$1 prefix=$2 t
  for t in "$b"/tests/unit/test_*; do
    [ -x "$t" ] && [ "${t%.d}" = "$t" ] && run_suite "$prefix unit/$(basename "$t")" "$t"
  done
  for t in "$b"/tests/integration/test_*; do
    [ -x "$t" ] && [ "${t%.d}" = "$t" ] && run_suite "$prefix integration/$(basename "$t")" "$t"
  done
}

run_tree build ""

# Browser tests of the web UI: start the whole system (scripts/run.sh) on
# spare ports with its own data folder, run tests/browser/run.mjs against it
# (Chromium + playwright-core), stop the system. Each browser test counts
# in the totals; skipped ones (endpoints not routed yet) are reported apart.
SKIPPED=0
browser_suite() {
  local port=${BROWSER_PORT:-18180} data="$ROOT/build/browser-var" log="$OUT/browser.log" pid ok=0 p f s
  echo "== browser (web UI, Chromium)"
  if ! make -s web >"$OUT/web-build.log" 2>&1 || [ ! -d web/node_modules/playwright-core ]; then
    note_fail "browser (building the web UI failed: tests/out/web-build.log)"; tail -n 20 "$OUT/web-build.log" | sed 's/^/   | /'; return
  fi
  if [ ! -x /usr/bin/chromium ]; then note_fail "browser (/usr/bin/chromium missing: run 'make deps')"; return; fi
  # Stop the system on any exit too, then run whatever exit trap was set.
  local prev attempt
  prev=$(trap -p EXIT)
  eval "set -- $prev"
  trap 'DATA_DIR="$ROOT/build/browser-var" bash "$ROOT/scripts/stop.sh" >/dev/null 2>&1; '"${3:-}" EXIT
  for attempt in 1 2; do # a second try if the system stops while starting
    DATA_DIR="$data" bash scripts/stop.sh >/dev/null 2>&1
    rm -rf "$data"
    PORT=$port PG_PORT=$((port + 1)) BROKER_PORT=$((port + 2)) DATA_DIR="$data" AUTH_RATE_LIMIT_PER_MIN=0 \
      WEB_ROOT="$ROOT/web/dist" bash scripts/run.sh >"$OUT/browser-system.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
      if grep -q 'Ready:' "$OUT/browser-system.log" 2>/dev/null; then ok=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    [ $ok -eq 1 ] && break
    wait "$pid" 2>/dev/null
  done
  if [ $ok -eq 1 ]; then
    timeout "${BROWSER_TIMEOUT:-600}" node tests/browser/run.mjs --base-url "http://127.0.0.1:$port" --out "$OUT/browser" >"$log" 2>&1
    local rc=$?
    read -r p f s < <(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1 | awk '{print $1, $3, $5}')
    p=${p:-0}; f=${f:-0}; s=${s:-0}
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
    grep -E '^(not ok|skip) ' "$log" | sed 's/^/   | /'
    if [ "$f" -gt 0 ]; then FAILURES+=("browser ($f failed; screenshots in tests/out/browser)"); fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then note_fail "browser (exit $rc without a counted failure)"; tail -n 20 "$log" | sed 's/^/   | /'; fi
    echo "   $p passed, $f failed, $s skipped (rc $rc)"
  else
    note_fail "browser (the system did not start; see tests/out/browser-system.log)"
    tail -n 20 "$OUT/browser-system.log" | sed 's/^/   | /'
  fi
  DATA_DIR="$data" bash scripts/stop.sh >/dev/null 2>&1
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ -n "$prev" ]; then eval "$prev"; else trap - EXIT; fi
}
[ "${SKIP_BROWSER:-0}" = 1 ] || browser_suite

if [ "${SKIP_SAN:-0}" != 1 ]; then
  echo "== build (ASan + UBSan)"
  if make -s -j"$JOBS" SAN=1 all >"$OUT/build-asan.log" 2>&1; then
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
    run_tree build/asan "[asan]"
  else
    tail -n 40 "$OUT/build-asan.log"; note_fail "build with sanitizers"
  fi
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  echo "== build fuzz targets"
  if make -s -j"$JOBS" fuzz-build >"$OUT/build-fuzz.log" 2>&1; then
    check "fuzz (${FUZZ_SECONDS:-10}s per target)" bash tests/fuzz/run.sh "${FUZZ_SECONDS:-10}"
  else
    tail -n 40 "$OUT/build-fuzz.log"; note_fail "build fuzz targets"
  fi
fi

check "lint/openapi" bash scripts/lint.sh openapi
check "lint/clang-format" bash scripts/lint.sh format
check "deploy/compose+k8s" bash scripts/validate-deploy.sh
check "deploy/media-on-own-database" bash scripts/test-own-database.sh
# Every process restarted in turn (stop-start) under load: 0 failed, 0 lost.
check "deploy/rolling-restart" env MODE=stop-start PAUSE=2 WARMUP=8 bash scripts/rolling-restart-test.sh
# Passes with "SKIP: reason" where network namespaces cannot be made.
check "deploy/multihost" bash scripts/test-multihost.sh
grep -h '^SKIP:' "$OUT/deploy_multihost.log" 2>/dev/null | sed 's/^/   | /'

echo
if [ ${#FAILURES[@]} -gt 0 ]; then
  echo "Failures:"; printf '  - %s\n' "${FAILURES[@]}"
fi
echo "$PASSED passed, $FAILED failed$([ "${SKIPPED:-0}" -gt 0 ] && echo ", $SKIPPED skipped")"
[ "$FAILED" -eq 0 ]
