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

echo
if [ ${#FAILURES[@]} -gt 0 ]; then
  echo "Failures:"; printf '  - %s\n' "${FAILURES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
