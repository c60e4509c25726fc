#!/usr/bin/env bash
# Builds Docker Compose (the Go module github.com/docker/compose/v5 at the
# version pinned below) as the docker CLI plugin and installs it as
# ${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose, so that
# `docker compose` drives Berth's engine (docs/compose.md).
#
# `go install github.com/docker/compose/v5/cmd@VERSION` is refused (the
# module's go.mod has exclude directives), so the module is downloaded
# from the Go module proxy, checked against the pinned hash, copied out of
# the read-only module cache and built as the main module, with its own
# go.mod and go.sum: nothing of it enters Berth's go.mod. The version is
# stamped as compose's Makefile does (-X .../internal.Version), so
# `docker compose version` prints it rather than "dev".
#
# Idempotent: the binary is cached under
# ${XDG_CACHE_HOME:-~/.cache}/berth/compose/VERSION and rebuilt only when
# missing or not reporting VERSION; the plugin is replaced only when it
# differs. A build on a fresh module cache takes about 1.5 minutes on
# 2 cores (docs/compose.md).
set -euo pipefail

COMPOSE_VERSION=v5.6.0
# go.sum's h1: hash of the module zip at COMPOSE_VERSION.
COMPOSE_SUM='h1:WCDEV0D1CtZLyPdklHdEjFBnCStosBYkfsD3tvM/ITU='
MODULE=github.com/docker/compose/v5

GO=${GO:-go}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/berth/compose/$COMPOSE_VERSION
bin=$cache/docker-compose
plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

built_version() { "$1" version --short 2>/dev/null || true; }

if [ ! -x "$bin" ] || [ "$(built_version "$bin")" != "${COMPOSE_VERSION#v}" ]; then
  command -v "$GO" >/dev/null || { echo "build-compose: Go is needed to build docker compose ($GO not found); install Go 1.26 or set GO" >&2; exit 1; }
  echo "build-compose: building docker compose $COMPOSE_VERSION (about 1.5 minutes on a fresh module cache)"
  json=$("$GO" mod download -json "$MODULE@$COMPOSE_VERSION") || {
    echo "build-compose: could not download $MODULE@$COMPOSE_VERSION from the Go module proxy ($("$GO" env GOPROXY)); check the network or GOPROXY" >&2; exit 1; }
  field() { printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"'"$1"'": "\(.*\)",\{0,1\}$/\1/p'; }
  sum=$(field Sum)
  dir=$(field Dir)
  if [ "$sum" != "$COMPOSE_SUM" ]; then
    echo "build-compose: $MODULE@$COMPOSE_VERSION has hash $sum, not the pinned $COMPOSE_SUM; refusing to build it" >&2
    exit 1
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp -R "$dir" "$work/src"
  chmod -R u+w "$work/src"
  mkdir -p "$cache"
  (cd "$work/src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off "$GO" build -trimpath \
    -ldflags "-s -w -X $MODULE/internal.Version=$COMPOSE_VERSION" -o "$work/docker-compose" ./cmd)
  mv "$work/docker-compose" "$bin"
fi

mkdir -p "$plugin_dir"
if ! cmp -s "$bin" "$plugin_dir/docker-compose"; then
  cp "$bin" "$plugin_dir/docker-compose.tmp"
  chmod 0755 "$plugin_dir/docker-compose.tmp"
  mv "$plugin_dir/docker-compose.tmp" "$plugin_dir/docker-compose"
fi
echo "build-compose: $plugin_dir/docker-compose is Docker Compose $("$plugin_dir/docker-compose" version --short)"
