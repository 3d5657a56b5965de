#!/usr/bin/env bash
# Installs every Debian package the project needs to build, run and test.
# Idempotent: packages already present are skipped, and apt-get runs only
# when something is missing. Run as root or with sudo available.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential pkg-config clang clang-format libclang-rt-14-dev libfuzzer-14-dev
  # libraries (linked through pkg-config; civetweb has no .pc file)
  libzmq3-dev libczmq-dev libcivetweb-dev libpq-dev libmsgpack-dev libjwt-dev
  libsodium-dev libjansson-dev libvips-dev libcurl4-openssl-dev libcmocka-dev
  # libjpeg-turbo's transcoding API (media's lossless path for right-sized JPEGs)
  libjpeg62-turbo-dev
  # libcrypto (SHA-1 of the gateway's WebSocket handshake; libjwt links it already)
  libssl-dev
  # database server for the embedded default and the tests
  postgresql-15 postgresql-contrib
  # tools: benchmarks, spec and compose checks, process helpers, network
  # namespaces (scripts/test-multihost.sh)
  wrk curl yamllint procps libvips-tools iproute2
  # compose file validation (`docker-compose config` needs no Docker engine)
  docker-compose
  # the web UI's browser tests (driven by playwright-core from web/node_modules)
  chromium
)

# Node.js runs the OpenAPI linter, the manifest validator and the web UI's
# build and browser tests. Machines of this kind ship Node 20; where it is
# absent, Debian's own nodejs and npm are the fallback.
if ! command -v node >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
