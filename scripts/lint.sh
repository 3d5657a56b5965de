#!/usr/bin/env bash
# Lint checks: `lint.sh openapi` validates docs/openapi.yaml with Redocly's
# CLI (pinned in tools/openapi/package-lock.json, installed with npm ci on
# first use); `lint.sh format` checks that every tracked C file is
# clang-formatted. With no argument it runs both.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

openapi() {
  if [ ! -x tools/openapi/node_modules/.bin/redocly ]; then
    (cd tools/openapi && npm ci --no-audit --no-fund --loglevel=error)
  fi
  tools/openapi/node_modules/.bin/redocly lint --config tools/openapi/redocly.yaml docs/openapi.yaml
}

format() {
  local bad=0 f
  for f in $(git ls-files '*.c' '*.h'); do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "not formatted: $f (run 'make fmt')"; bad=1
    fi
  done
  return $bad
}

case "${1:-all}" in
  openapi) openapi ;;
  format) format ;;
  all) openapi; format ;;
  *) echo "usage: lint.sh [openapi|format]" >&2; exit 2 ;;
esac
