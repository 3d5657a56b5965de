#!/usr/bin/env bash
# Validates the deployment files without a Docker engine or a cluster
# (tests/run.sh runs it as the check "deploy/compose+k8s"):
#
#   1. compose/docker-compose.yml with Debian's docker-compose 1.29:
#      `docker-compose config -q` parses, merges and checks the file against
#      the Compose schema and needs no engine (with compose/.env.example as
#      the env file, so the required secrets resolve);
#   2. yamllint on every YAML file of compose/ and deploy/k8s/;
#   3. deploy/k8s/validate/validate.mjs (Node): every manifest against the
#      Kubernetes 1.27 schemas bundled in the npm package kubernetes-models
#      (offline; pinned in deploy/k8s/validate/package-lock.json, installed
#      with npm ci on first use), unknown field names, and the structural
#      rules (every services/ folder deployed with probes, HPA, PDB,
#      resources; broker single; gateway not exposed; edge config in sync;
#      Compose covers every service, nothing but the edge publishes a port).
#      Debian 12 packages no kubeconform or kubeval, and kubectl cannot
#      validate without an API server, hence the npm package;
#   4. compose/nginx.conf with `nginx -t` when an nginx binary is at hand
#      (NGINX_BIN, PATH, or Debian's package unpacked into
#      build/deploy-tools/ with apt-get download: never installed, so no
#      daemon starts); skipped with a message otherwise. nginx older than
#      1.27.3 lacks `resolve` in upstreams, so that word is dropped first;
#   5. the image's runtime packages (compose/Dockerfile, final stage) cover
#      every shared library the built programs load (readelf + dpkg);
#   6. docs/operations.md documents every environment variable that a
#      program reads: the names printed by each binary's --help plus the
#      names passed to config_str/config_int/getenv/setenv in the sources;
#   7. the entrypoint and probe scripts parse, and leave SHARD as given
#      (auto is resolved by each service, which leases a shard from Postgres).
# Exit 0 when everything passes; every failure is printed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
FAILED=0
fail() {
  echo "FAIL: $*"
  FAILED=$((FAILED + 1))
}
ok() { echo "ok: $*"; }

# --- 1. Compose -----------------------------------------------------------------
if command -v docker-compose >/dev/null 2>&1; then
  if out=$(docker-compose -f compose/docker-compose.yml --env-file compose/.env.example config -q 2>&1); then
    ok "docker-compose $(docker-compose version --short 2>/dev/null) config: compose/docker-compose.yml is valid"
  else
    fail "docker-compose config: $out"
  fi
  # Without the secrets the file must refuse to render (no silent defaults).
  if docker-compose -f compose/docker-compose.yml --env-file /dev/null config -q >/dev/null 2>&1; then
    fail "docker-compose config succeeds without POSTGRES_PASSWORD/JWT_SECRET: secrets must be required"
  else
    ok "compose refuses to render without the secrets"
  fi
else
  fail "docker-compose not found (make deps installs Debian's docker-compose)"
fi

# --- 2. yamllint ------------------------------------------------------------------
if command -v yamllint >/dev/null 2>&1; then
  YAMLLINT_CONFIG='{extends: default, rules: {line-length: {max: 120}, document-start: disable,
    truthy: {check-keys: false}, comments: {min-spaces-from-content: 1},
    indentation: {indent-sequences: consistent}}}'
  if out=$(yamllint -s -d "$YAMLLINT_CONFIG" compose/docker-compose.yml deploy/k8s/*.yaml 2>&1); then
    ok "yamllint: compose/docker-compose.yml deploy/k8s/*.yaml"
  else
    fail "yamllint:"$'\n'"$out"
  fi
else
  fail "yamllint not found (make deps)"
fi

# --- 3. Kubernetes schemas and structure ------------------------------------------
VALIDATE_DIR=deploy/k8s/validate
if ! command -v node >/dev/null 2>&1; then
  fail "node not found: cannot validate the Kubernetes manifests"
else
  if [ ! -f "$VALIDATE_DIR/node_modules/kubernetes-models/package.json" ] ||
    [ ! -f "$VALIDATE_DIR/node_modules/yaml/package.json" ]; then
    (cd "$VALIDATE_DIR" && npm ci --no-audit --no-fund --loglevel=error) ||
      fail "npm ci in $VALIDATE_DIR"
  fi
  if out=$(node "$VALIDATE_DIR/validate.mjs" "$ROOT" 2>&1); then
    ok "$out"
  else
    fail "deploy/k8s and compose structure:"$'\n'"$out"
  fi
fi

# --- 4. nginx -t ------------------------------------------------------------------
find_nginx() {
  if [ -n "${NGINX_BIN:-}" ] && [ -x "$NGINX_BIN" ]; then echo "$NGINX_BIN"; return; fi
  if command -v nginx >/dev/null 2>&1; then command -v nginx; return; fi
  local tools="$ROOT/build/deploy-tools"
  if [ ! -x "$tools/root/usr/sbin/nginx" ] && command -v apt-get >/dev/null 2>&1; then
    mkdir -p "$tools"
    (cd "$tools" && rm -f ./*.deb && timeout 120 apt-get download nginx >/dev/null 2>&1 &&
      for deb in ./*.deb; do dpkg -x "$deb" root; done) || true
  fi
  [ -x "$tools/root/usr/sbin/nginx" ] && echo "$tools/root/usr/sbin/nginx"
}
NGINX=$(find_nginx)
if [ -n "$NGINX" ]; then
  work=$(mktemp -d)
  version=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
  conf="$work/nginx.conf"
  # Test copy: the upstream host must resolve here, paths must be writable,
  # and `resolve` needs nginx >= 1.27.3.
  sed -e "s|/var/cache/nginx/media|$work/cache|" \
    -e "s|^pid .*|pid $work/nginx.pid;|" \
    -e "s|^http {|http {\n    client_body_temp_path $work/body; proxy_temp_path $work/proxy; fastcgi_temp_path $work/fcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;|" \
    -e "s|server gateway:8080 resolve|server 127.0.0.1:8080$(printf '%s\n1.27.3\n' "$version" | sort -V -C && echo '' || echo ' resolve')|" \
    compose/nginx.conf >"$conf"
  if out=$("$NGINX" -t -q -p "$work/" -c "$conf" -e /dev/stderr 2>&1); then
    ok "nginx $version -t: compose/nginx.conf"
  else
    fail "nginx -t compose/nginx.conf:"$'\n'"$out"
  fi
  rm -rf "$work"
else
  echo "skipped: nginx -t (no nginx binary; set NGINX_BIN)"
fi

# --- 5. Runtime packages of the image ------------------------------------------------
if command -v readelf >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 && [ -x build/bin/gateway ]; then
  # The package list of the final stage's apt-get install.
  final_packages=$(awk '/^FROM .* AS final/{f=1} f' compose/Dockerfile |
    sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
    grep -vE '^(apt-get|install|rm|rf|groupadd|useradd|mkdir|chown|app)$' | sort -u)
  allowed=$(printf '%s\n' $final_packages libc6 libgcc-s1 libstdc++6
    for p in $final_packages; do
      apt-cache depends --important "$p" 2>/dev/null | sed -n 's/^ *Depends: \([^ <>]*\).*/\1/p'
    done)
  missing=""
  not_built=""
  programs=(build/bin/gateway build/bin/zcall)
  for main in services/*/main.c; do programs+=("build/bin/$(basename "$(dirname "$main")")"); done
  cache=$(ldconfig -p)
  declare -A package_of=()
  for program in "${programs[@]}"; do
    if [ ! -x "$program" ]; then
      not_built="$not_built $(basename "$program")"
      continue
    fi
    for lib in $(readelf -d "$program" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
      if [ -z "${package_of[$lib]+set}" ]; then
        file=$(awk -v l="$lib" '$1 == l && /x86-64|64bit|x86_64/ {print $NF; exit}' <<<"$cache")
        [ -n "$file" ] || file=$(awk -v l="$lib" '$1 == l {print $NF; exit}' <<<"$cache")
        # dpkg knows a file by the path its package installed (usrmerge:
        # /lib or /usr/lib), so try the name ldconfig gives and the
        # resolved one.
        real=$(readlink -f "$file")
        package_of[$lib]=$(dpkg -S "$file" "$real" "${real#/usr}" 2>/dev/null | head -n 1 | cut -d: -f1)
      fi
      package=${package_of[$lib]}
      if [ -z "$package" ] || ! grep -qx "$package" <<<"$allowed"; then
        missing="$missing $(basename "$program"):$lib(${package:-?})"
      fi
    done
  done
  if [ -z "$missing" ]; then
    ok "compose/Dockerfile runtime packages cover every library the programs load"
  else
    fail "compose/Dockerfile's final stage lacks the packages of:$missing"
  fi
  [ -z "$not_built" ] || echo "note: not built, not checked:$not_built"
else
  echo "skipped: runtime library check (needs readelf, dpkg and a built build/bin/)"
fi

# --- 6. Every environment variable documented ----------------------------------------
doc=docs/operations.md
if [ ! -f "$doc" ]; then
  fail "$doc missing"
else
  names=$(
    grep -rhoE '(config_str|config_int|getenv|setenv|s_default|s_setting)\("[A-Z][A-Z0-9_]+"' \
      common gateway services tools --include='*.c' | sed 's/.*("//; s/"$//'
    for program in build/bin/broker build/bin/gateway build/bin/zcall \
      $(for main in services/*/main.c; do echo "build/bin/$(basename "$(dirname "$main")")"; done); do
      [ -x "$program" ] && "$program" --help 2>/dev/null | sed -n 's/^  \([A-Z][A-Z0-9_]\{2,\}\)\( .*\)\{0,1\}$/\1/p'
    done
  )
  undocumented=""
  count=0
  for name in $(sort -u <<<"$names"); do
    count=$((count + 1))
    grep -q "\`$name\`" "$doc" || undocumented="$undocumented $name"
  done
  if [ -z "$undocumented" ]; then
    ok "$doc documents all $count environment variables the programs read"
  else
    fail "$doc does not document:$undocumented"
  fi
fi

# --- 7. Entrypoint and probe ------------------------------------------------------------
if sh -n compose/entrypoint.sh && bash -n compose/probe.sh; then
  shard=$(env -i PATH="$PATH" SHARD=auto sh compose/entrypoint.sh sh -c 'echo "$SHARD"')
  fixed=$(env -i PATH="$PATH" SHARD=12 sh compose/entrypoint.sh sh -c 'echo "$SHARD"')
  if [ "$shard" = auto ] && [ "$fixed" = 12 ]; then
    ok "entrypoint: SHARD=auto and SHARD=12 passed through to the program"
  else
    fail "entrypoint: SHARD=auto gave '$shard' (want auto), SHARD=12 gave '$fixed'"
  fi
else
  fail "compose/entrypoint.sh or compose/probe.sh does not parse"
fi

if [ "$FAILED" -gt 0 ]; then
  echo "validate-deploy: $FAILED check(s) failed"
  exit 1
fi
echo "validate-deploy: all checks passed"
