#!/usr/bin/env bash
# deps.sh run|test — installs, idempotently, the Debian packages Berth needs
# on Linux: for `make run` (run) or for `make test` (test). Uses sudo when
# not root. Nothing is installed that is already there.
set -euo pipefail
mode=${1:-run}

# What running Berth needs:
#   qemu-system-x86 / qemu-system-arm: the micro-VMs (host arch; arm64 is
#     also the Mac's guest, booted by the tests); qemu-system-data: qboot,
#     the fast x86 firmware; kmod: depmod for the guest kernel's
#     modules.dep; busybox-static: the demo image `make run` makes.
run_pkgs=(qemu-system-data kmod busybox-static ca-certificates make git)
case "$(dpkg --print-architecture)" in
  amd64) run_pkgs+=(qemu-system-x86) ;;
  arm64) run_pkgs+=(qemu-system-arm) ;;
esac
# What the tests drive for real, besides:
#   qemu-system-x86 + qemu-system-arm: amd64 and arm64 guests
#   docker-registry: a real registry; apache2-utils: htpasswd
#   e2fsprogs: e2fsck/debugfs check every ext4 image we write
#   btrfs-progs: a reflink-capable loop filesystem for the FICLONE test
#   cpio: lists the initramfs; xz-utils: checks our xz reader; bzip2:
#     a bzip2-compressed archive for image load
#   qemu-utils; debootstrap: a real Debian rootfs for the ext4 benchmark
#   chromium: the real browser the terminal page's end-to-end test drives
#   gcc, libc6-dev, libseccomp-dev, pkg-config, binutils: the image
#     builder's static runc with seccomp (make builder-bins); for the other
#     arch of amd64/arm64, its cross gcc, cross libc and libseccomp-dev
#     (a foreign dpkg architecture, added here when missing)
test_pkgs=(qemu-system-x86 qemu-system-arm qemu-utils docker-registry apache2-utils
           e2fsprogs btrfs-progs cpio xz-utils bzip2 debootstrap chromium
           gcc libc6-dev libseccomp-dev pkg-config binutils)
case "$(dpkg --print-architecture)" in
  amd64) cross_arch=arm64 cross_pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libseccomp-dev:arm64) ;;
  arm64) cross_arch=amd64 cross_pkgs=(gcc-x86-64-linux-gnu libc6-dev-amd64-cross libseccomp-dev:amd64) ;;
  *) cross_arch="" cross_pkgs=() ;;
esac

pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}" "${cross_pkgs[@]}")
# Node.js and npm build the web pages (`make web`, which runs npm ci). Only
# when there is no node at all: a NodeSource nodejs (which bundles npm)
# must not get Debian's npm on top. `make web` needs Node.js 20 or later
# and says so; Debian bookworm's own nodejs is 18.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ "$mode" = test ] && [ -n "$cross_arch" ] &&
   ! { dpkg --print-foreign-architectures | grep -qx "$cross_arch"; }; then
  echo "deps: adding the dpkg architecture $cross_arch (libseccomp-dev:$cross_arch)"
  $sudo dpkg --add-architecture "$cross_arch"
fi
$sudo apt-get update -qq
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
