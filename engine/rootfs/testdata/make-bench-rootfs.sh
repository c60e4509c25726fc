#!/bin/sh
# Makes the real root filesystem layer the rootfs benchmarks read:
# `debootstrap --variant=minbase bookworm` packed as one uncompressed tar,
# plus a gzip -6 copy. Needs root, debootstrap and the Debian mirror.
# Usage: make-bench-rootfs.sh [DIR]   (default ~/.cache/berth/bench)
set -eu
dir=${1:-"$HOME/.cache/berth/bench"}
tar="$dir/debian-bookworm-minbase.tar"
[ -s "$tar.gz" ] && exit 0
mkdir -p "$dir"
tree=$(mktemp -d "$dir/rootfs.XXXXXX")
trap 'rm -rf "$tree"' EXIT
debootstrap --variant=minbase bookworm "$tree" http://deb.debian.org/debian >"$dir/debootstrap.log"
tar -C "$tree" --numeric-owner -cf "$tar.tmp" .
mv "$tar.tmp" "$tar"
gzip -k -6 -c "$tar" >"$tar.gz.tmp"
mv "$tar.gz.tmp" "$tar.gz"
