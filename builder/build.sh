#!/usr/bin/env bash
# build.sh [ARCH...] — the image builder guest's programs, static, for
# linux/ARCH (default: this machine's arch, and the other of amd64/arm64
# when its C cross toolchain is installed):
#
#   bin/ARCH/buildkitd, bin/ARCH/buildctl   BuildKit, pure Go (CGO_ENABLED=0),
#                                           at the version go.mod pins
#   bin/ARCH/runc                           runc with seccomp (cgo, static
#                                           libseccomp), at the version
#                                           runc/go.mod pins
#
# Everything comes from the Go module proxy through the two go.sum files;
# nothing prebuilt is downloaded. An arch whose bin/ARCH/.key matches the
# pins, the Go version and this script is not rebuilt, so a rerun returns at
# once. Each build is checked: static, for ARCH, and (on this machine's
# arch) reporting the pinned version. runc needs Debian's libseccomp-dev (and, for the other arch,
# gcc-aarch64-linux-gnu libc6-dev-arm64-cross libseccomp-dev:arm64, or
# gcc-x86-64-linux-gnu libc6-dev-amd64-cross libseccomp-dev:amd64);
# assets/linux/deps.sh test installs them.
set -euo pipefail
cd "$(dirname "$0")"
GO=${GO:-go}

host=$($GO env GOHOSTARCH)
other=arm64
[ "$host" = arm64 ] && other=amd64

# triple ARCH: the Debian multiarch triple of ARCH.
triple() {
  case "$1" in
    amd64) echo x86_64-linux-gnu ;;
    arm64) echo aarch64-linux-gnu ;;
    *) echo "builder: unsupported arch $1 (amd64 or arm64)" >&2; return 1 ;;
  esac
}

# cc ARCH: the C compiler that targets ARCH from this machine.
cc() {
  if [ "$1" = "$host" ]; then echo "${CC:-gcc}"; else echo "$(triple "$1")-gcc"; fi
}

# missing ARCH: what is not installed to build runc for ARCH (empty: ready).
missing() {
  local t m=()
  t=$(triple "$1")
  command -v "$(cc "$1")" >/dev/null || m+=("C compiler $(cc "$1")")
  [ -f "/usr/lib/$t/libseccomp.a" ] || m+=("/usr/lib/$t/libseccomp.a")
  command -v pkg-config >/dev/null || m+=("pkg-config")
  command -v readelf >/dev/null || m+=("readelf (binutils)")
  echo "${m[*]}"
}

arches=("$@")
if [ ${#arches[@]} -eq 0 ]; then
  arches=("$host")
  if [ -z "$(missing "$other")" ]; then
    arches+=("$other")
  else
    echo "builder: skipping linux/$other (no cross toolchain: $(missing "$other"))" >&2
  fi
fi

bk_version=$($GO list -m -f '{{.Version}}' github.com/moby/buildkit)
runc_version=$(cd runc && $GO list -m -f '{{.Version}}' github.com/opencontainers/runc)
key=$( { $GO version; echo "buildkit $bk_version runc $runc_version";
         cat go.mod go.sum runc/go.mod runc/go.sum "$(basename "$0")"; } | sha256sum | cut -c1-16)

# check ARCH: every program in bin/ARCH is a static linux/ARCH executable
# (no ELF interpreter: the builder guest has no libc), and on this machine's
# arch each runs and reports the pinned version.
check() {
  local a=$1 f want machine
  machine=$( [ "$a" = amd64 ] && echo 'X86-64' || echo 'AArch64')
  for f in buildkitd buildctl runc; do
    # Outputs are captured before grep -q reads them: with pipefail, a
    # grep that stops at its first match can fail the pipeline by
    # SIGPIPE-ing the writer.
    grep -q "Machine:.*$machine" <<<"$(readelf -h "bin/$a/$f")" ||
      { echo "builder: bin/$a/$f is not a linux/$a executable" >&2; return 1; }
    if grep -q INTERP <<<"$(readelf -lW "bin/$a/$f")"; then
      echo "builder: bin/$a/$f is dynamically linked; the builder guest needs static programs" >&2
      return 1
    fi
    [ "$a" = "$host" ] || continue
    want=$bk_version
    [ "$f" = runc ] && want="runc version ${runc_version#v}"
    grep -qF "$want" <<<"$("bin/$a/$f" --version)" ||
      { echo "builder: bin/$a/$f --version does not report $want" >&2; return 1; }
  done
}

# elapsed START: seconds since START (date +%s.%N), one decimal.
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

for a in "${arches[@]}"; do
  t=$(triple "$a")
  out=bin/$a
  if [ -f "$out/.key" ] && [ "$(cat "$out/.key")" = "$key" ] &&
     [ -x "$out/buildkitd" ] && [ -x "$out/buildctl" ] && [ -x "$out/runc" ]; then
    echo "builder: linux/$a up to date (buildkit $bk_version, runc $runc_version) in builder/$out"
    continue
  fi
  m=$(missing "$a")
  if [ -n "$m" ]; then
    echo "builder: cannot build runc for linux/$a: missing $m; on Debian run: bash assets/linux/deps.sh test" >&2
    exit 1
  fi
  mkdir -p "$out"
  rm -f "$out/.key"

  bk_ldflags="-s -w -X github.com/moby/buildkit/version.Version=$bk_version"
  bk_ldflags+=" -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
  bk_ldflags+=" -X github.com/moby/buildkit/version.Revision=berth"
  for p in buildkitd buildctl; do
    s=$(date +%s.%N)
    CGO_ENABLED=0 GOOS=linux GOARCH=$a $GO build -trimpath \
      -tags 'osusergo netgo static_build' -ldflags "$bk_ldflags" \
      -o "$out/$p" "github.com/moby/buildkit/cmd/$p"
    echo "builder: linux/$a $p $bk_version built in $(elapsed "$s")s"
  done

  # runc as its Makefile's static target builds it, less the libpathrs tag
  # (a Rust library Debian does not package; runc falls back to Go code).
  s=$(date +%s.%N)
  (cd runc && CGO_ENABLED=1 GOOS=linux GOARCH=$a CC=$(cc "$a") \
    PKG_CONFIG_LIBDIR=/usr/lib/$t/pkgconfig:/usr/share/pkgconfig \
    $GO build -trimpath -tags 'seccomp urfave_cli_no_docs netgo osusergo' \
      -ldflags "-s -w -X main.gitCommit=$runc_version -extldflags -static" \
      -o "../$out/runc" github.com/opencontainers/runc)
  echo "builder: linux/$a runc $runc_version built in $(elapsed "$s")s"
  check "$a"
  echo "$key" > "$out/.key"
done
