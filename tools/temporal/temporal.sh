#!/usr/bin/env bash
# The Temporal dev server of this project: the Temporal CLI pinned in tools/temporal/go.mod,
# built from the Go module proxy into .cache/temporal/ (git-ignored) once per pinned version.
#
#   tools/temporal/temporal.sh build   build the CLI unless the pinned version is there; print its path
#   tools/temporal/temporal.sh dev     `temporal server start-dev` for a user: 127.0.0.1:7233, UI :8233
#   tools/temporal/temporal.sh test    a headless server on free ports, the server-backed tests, stop
#
# Environment: DIFFEM_TEMPORAL_PORT / DIFFEM_TEMPORAL_UI_PORT (dev), DIFFEM_TEMPORAL_DB (dev).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/temporal"

# The version comes from go.mod so that bumping the pin is the only change a new CLI needs.
version="$(awk '$1 == "require" && $2 == "github.com/temporalio/cli" { print $3 }' "$here/go.mod")"
[ -n "$version" ] || { echo "tools/temporal/go.mod does not require github.com/temporalio/cli" >&2; exit 1; }
binary="$cache/temporal-$version"

# Search attributes that workflows/temporal.ts (SEARCH_ATTRIBUTES) upserts: registered at start,
# since upserting an unregistered one fails the workflow task.
search_attributes=(
  --search-attribute DiffemCampaignId=Keyword
  --search-attribute DiffemLap=Int
  --search-attribute DiffemDatasetDigest=Keyword
  --search-attribute DiffemHeadline=Double
)

build() {
  if [ -x "$binary" ]; then
    echo "$binary"
    return
  fi
  command -v go >/dev/null || { echo "go is needed to build the Temporal CLI $version (https://go.dev/dl)" >&2; exit 1; }
  mkdir -p "$cache"
  echo "building the Temporal CLI $version from the Go module proxy (several minutes, once)" >&2
  local start=$SECONDS
  # Build into a temporary name first: an interrupted build must not leave a binary that looks done.
  # The CLI reports its version from this variable (release builds set it the same way).
  (cd "$here" && go build -trimpath -ldflags "-X github.com/temporalio/cli/temporalcli.Version=${version#v}" \
    -o "$binary.partial" github.com/temporalio/cli/cmd/temporal)
  mv "$binary.partial" "$binary"
  ln -sfn "temporal-$version" "$cache/temporal"
  echo "built $binary in $((SECONDS - start)) s" >&2
  echo "$binary"
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Waits until the frontend answers (the SQLite schema is created on the first start).
wait_ready() {
  local address=$1 pid=$2
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the Temporal server exited during start-up" >&2
      return 1
    fi
    if "$binary" operator cluster health --address "$address" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "the Temporal server at $address did not become healthy in 60 s" >&2
  return 1
}

case "${1:-}" in
  build)
    build
    ;;
  dev)
    build >/dev/null
    port="${DIFFEM_TEMPORAL_PORT:-7233}"
    ui_port="${DIFFEM_TEMPORAL_UI_PORT:-8233}"
    db="${DIFFEM_TEMPORAL_DB:-$cache/dev.sqlite}"
    echo "Temporal $version: frontend 127.0.0.1:$port, web UI http://127.0.0.1:$ui_port, database $db" >&2
    echo "point campaigns at it: TEMPORAL_ADDRESS=127.0.0.1:$port diffem run CONFIG.yaml --engine temporal --store DIR" >&2
    exec "$binary" server start-dev --ip 127.0.0.1 --port "$port" --ui-port "$ui_port" \
      --db-filename "$db" "${search_attributes[@]}" "${@:2}"
    ;;
  test)
    build >/dev/null
    work="$(mktemp -d "${TMPDIR:-/tmp}/diffem-temporal-test.XXXXXX")"
    port="$(free_port)"
    address="127.0.0.1:$port"
    "$binary" server start-dev --headless --ip 127.0.0.1 --port "$port" --db-filename "$work/temporal.sqlite" \
      --log-level warn "${search_attributes[@]}" >"$work/server.log" 2>&1 &
    server=$!
    stop_server() {
      kill "$server" 2>/dev/null || true
      wait "$server" 2>/dev/null || true
      rm -rf "$work"
    }
    trap stop_server EXIT
    wait_ready "$address" "$server" || { cat "$work/server.log" >&2; exit 1; }
    echo "Temporal $version test server at $address" >&2
    cd "$root"
    node node_modules/typescript/bin/tsc -p tsconfig.json
    # One file at a time: the end-to-end tests spawn workers and servers of their own.
    TEMPORAL_ADDRESS="$address" TEMPORAL_NAMESPACE=default DIFFEM_TEMPORAL_CLI="$binary" DIFFEM_REQUIRE_TEMPORAL=1 \
      node --test --test-concurrency=1 dist/tests/temporal-server.test.js dist/tests/temporal-e2e*.test.js \
        dist/tests/deploy-queues.test.js dist/tests/deploy-worker.test.js "${@:2}"
    ;;
  *)
    echo "usage: tools/temporal/temporal.sh build|dev|test" >&2
    exit 2
    ;;
esac
