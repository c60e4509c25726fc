#!/usr/bin/env bash
# fetch-debian-kernel.sh ARCH [CACHE_DIR]
#
# Fetches Debian's current kernel package for ARCH (amd64 or arm64) with
# `apt-get download` and unpacks it with `dpkg -x` into CACHE_DIR/ARCH
# (default ~/.cache/berth/kernel/ARCH). Installing the package instead
# would run the host's boot hooks. The tree it leaves is what Berth's
# engine looks for on Linux when no kernel is configured:
#
#   CACHE_DIR/ARCH/boot/vmlinuz-VERSION
#   CACHE_DIR/ARCH/lib/modules/VERSION/...   (with modules.dep from depmod)
#
# Idempotent: an existing tree for the same version is kept.
set -euo pipefail
arch=${1:?usage: fetch-debian-kernel.sh amd64|arm64 [CACHE_DIR]}
cache=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/berth/kernel}
dest=$cache/$arch

need_update=0
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    dpkg --add-architecture "$arch"
    need_update=1
  fi
fi
# Resolve the versioned package behind the metapackage (its ABI number
# changes with Debian's security updates).
pkg=$(apt-cache depends "linux-image-$arch:$arch" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}' || true)
if [ -z "$pkg" ] || [ "$need_update" = 1 ]; then
  apt-get update -qq
  pkg=$(apt-cache depends "linux-image-$arch:$arch" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
pkg=${pkg%%:*}
version=${pkg#linux-image-}
if [ -f "$dest/boot/vmlinuz-$version" ] && [ -f "$dest/lib/modules/$version/modules.dep" ]; then
  echo "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q "$pkg:$arch" >&2)
rm -rf "$dest.new"
mkdir -p "$dest.new"
dpkg -x "$tmp"/*.deb "$dest.new"
depmod -b "$dest.new" "$version"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "$dest"
