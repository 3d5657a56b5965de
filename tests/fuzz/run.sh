#!/usr/bin/env bash
# Runs every built fuzz target for SECONDS (first argument, default 10) on a
# temporary copy of its seed corpus (tests/fuzz/corpus/<target>/), so seeds
# stay small and reviewed while new inputs found this run are thrown away.
# Builds nothing: `make fuzz-build` (or `make build/fuzz/fuzz_<name>`) does.
# Crash inputs are kept under tests/out/fuzz/ for reproduction:
#   build/fuzz/fuzz_<name> tests/out/fuzz/crash-...
# Exits non-zero when any target crashes, leaks, times out or is missing.
set -uo pipefail

SECONDS_PER_TARGET=${1:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
ARTIFACTS="$ROOT/tests/out/fuzz"
mkdir -p "$ARTIFACTS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

failed=0
found=0
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  bin="build/fuzz/$name"
  found=$((found + 1))
  if [ ! -x "$bin" ]; then
    echo "fuzz: $name: $bin is not built" >&2
    failed=$((failed + 1))
    continue
  fi
  corpus="$WORK/$name"
  mkdir -p "$corpus"
  if [ -d "tests/fuzz/corpus/$name" ]; then
    cp -r "tests/fuzz/corpus/$name/." "$corpus/"
  fi
  log="$ARTIFACTS/$name.log"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a leak
  # or blow-up; LSan is on by default with ASan.
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$name-" "$corpus" >"$log" 2>&1
  rc=$?
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$')
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $name FAILED (exit $rc), log $log" >&2
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 10 >&2
    failed=$((failed + 1))
  else
    echo "fuzz: $name ok (${runs:-?} runs in ${SECONDS_PER_TARGET}s)"
  fi
done

if [ "$found" -eq 0 ]; then
  echo "fuzz: no targets in tests/fuzz" >&2
  exit 1
fi
[ "$failed" -eq 0 ]
