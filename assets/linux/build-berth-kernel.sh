#!/usr/bin/env bash
# build-berth-kernel.sh [ARCH [CACHE_DIR]]
#
# Builds Berth's own guest kernel (`make kernel-berth`): Debian's
# linux-source-6.1 (the source of the guest kernel `make kernel` fetches),
# `make tinyconfig` with assets/linux/berth-kernel.config merged on top
# (scripts/kconfig/merge_config.sh): what the guest uses, built in, no
# modules, nothing else. It leaves
#
#   CACHE_DIR/berth-ARCH/boot/vmlinuz-RELEASE   (bzImage; arm64: Image)
#   CACHE_DIR/berth-ARCH/boot/config-RELEASE
#   CACHE_DIR/berth-ARCH/boot/berth-build.txt   (what it was built from)
#
# (CACHE_DIR default ~/.cache/berth/kernel) and prints the directory. The
# engine boots it when asked to: BERTH_KERNEL=CACHE_DIR/berth-ARCH, or
# `berth system kernel set --path CACHE_DIR/berth-ARCH`. The default stays
# Debian's kernel. docs/kernel.md has the details.
#
# ARCH is amd64 (default: this machine's) or arm64; building for the other
# one cross-compiles (gcc-aarch64-linux-gnu / gcc-x86-64-linux-gnu, which
# this script installs). Idempotent: the Debian packages it needs are
# installed only when missing (apt-get, sudo when not root), the source is
# unpacked once per linux-source version, and nothing is rebuilt when the
# installed kernel came from the same source, fragment and arch.
#
# The build is slow (tens of minutes on two busy cores) and runs niced:
# JOBS (default 2) sets make -j. BUILD_DIR (default CACHE_DIR/build) holds
# the source tree and the object files. Not part of `make test` or CI.
set -euo pipefail

host_arch=$(dpkg --print-architecture)
arch=${1:-$host_arch}
cache=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/berth/kernel}
jobs=${JOBS:-2}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/berth-kernel.config
build=${BUILD_DIR:-$cache/build}
src_pkg=linux-source-6.1

case "$arch" in
  amd64) karch=x86_64 target=bzImage image=arch/x86/boot/bzImage cross_pkg=gcc-x86-64-linux-gnu cross=x86_64-linux-gnu- ;;
  arm64) karch=arm64 target=Image image=arch/arm64/boot/Image cross_pkg=gcc-aarch64-linux-gnu cross=aarch64-linux-gnu- ;;
  *) echo "build-berth-kernel: unknown arch $arch (amd64 or arm64)" >&2; exit 2 ;;
esac

# The build's Debian packages: the source, and what Kbuild needs for this
# config (bison/flex: kconfig; bc: timeconst; libelf-dev: objtool;
# libssl-dev: certificate tools).
pkgs=("$src_pkg" make gcc bc bison flex libelf-dev libssl-dev xz-utils)
if [ "$arch" = "$host_arch" ]; then
  cross=""
else
  pkgs+=("$cross_pkg")
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "build-berth-kernel: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2 || {
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
  }
fi

src_version=$(dpkg-query -W -f='${Version}' "$src_pkg")
tarball=$(ls /usr/src/$src_pkg.tar.xz 2>/dev/null || true)
if [ -z "$tarball" ]; then
  echo "build-berth-kernel: /usr/src/$src_pkg.tar.xz is missing although $src_pkg $src_version is installed; reinstall it (apt-get install --reinstall $src_pkg)" >&2
  exit 1
fi

dest=$cache/berth-$arch
stamp="source=$src_pkg $src_version arch=$arch fragment=$(sha256sum "$fragment" | cut -d' ' -f1)"
if [ -f "$dest/boot/berth-build.txt" ] && [ "$(head -1 "$dest/boot/berth-build.txt")" = "$stamp" ] &&
   ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1; then
  echo "build-berth-kernel: up to date ($stamp)" >&2
  echo "$dest"
  exit 0
fi

# Unpack the source once per version.
tree=$build/$src_pkg
if [ "$(cat "$tree/.berth-source" 2>/dev/null)" != "$src_version" ]; then
  echo "build-berth-kernel: unpacking $tarball ($src_version) into $build" >&2
  rm -rf "$tree"
  mkdir -p "$build"
  tar -C "$build" -xf "$tarball"
  echo "$src_version" >"$tree/.berth-source"
fi

out=$build/out-$arch
mkdir -p "$out"
mk=(nice -n 19 make -C "$tree" O="$out" ARCH="$karch" ${cross:+CROSS_COMPILE=$cross} -j"$jobs")
echo "build-berth-kernel: configuring (tinyconfig + $(basename "$fragment"))" >&2
"${mk[@]}" -s tinyconfig >&2
(cd "$out" && ARCH=$karch "$tree/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$fragment" >&2)
"${mk[@]}" -s olddefconfig >&2

# Every option the fragment sets to y must be y now: a missing
# dependency or a renamed option would otherwise leave a kernel that
# cannot boot a Berth guest.
bad=()
while IFS= read -r opt; do
  grep -qx "$opt=y" "$out/.config" || bad+=("$opt")
done < <(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=y$/\1/p' "$fragment")
# Options the architecture does not have (PVH on arm64, PL011 on x86)
# are not errors.
case "$arch" in
  amd64) skip='^CONFIG_(SERIAL_AMBA_PL011|RTC_DRV_PL031)' ;;
  arm64) skip='^CONFIG_(PVH|HYPERVISOR_GUEST|PARAVIRT|KVM_GUEST|SERIAL_8250|VMGENID|RTC_DRV_CMOS|KERNEL_GZIP)' ;;
esac
really_bad=()
for o in "${bad[@]}"; do
  [[ $o =~ $skip ]] || really_bad+=("$o")
done
if [ ${#really_bad[@]} -gt 0 ]; then
  echo "build-berth-kernel: these options of $(basename "$fragment") are not y in the merged config (a dependency is off or the option is gone in $src_version): ${really_bad[*]}" >&2
  exit 1
fi

echo "build-berth-kernel: building $target with make -j$jobs (nice 19; tens of minutes)" >&2
"${mk[@]}" "$target" >&2
release=$("${mk[@]}" -s kernelrelease)

rm -rf "$dest.new"
mkdir -p "$dest.new/boot"
cp "$out/$image" "$dest.new/boot/vmlinuz-$release"
cp "$out/.config" "$dest.new/boot/config-$release"
printf '%s\nrelease=%s\nbuilt=%s\n' "$stamp" "$release" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$dest.new/boot/berth-build.txt"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "build-berth-kernel: $release in $dest" >&2
echo "$dest"
