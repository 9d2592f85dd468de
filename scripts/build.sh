#!/usr/bin/env bash
# Build skiff's release binaries: static, stripped, for linux/amd64 and
# linux/arm64, into dist/ with a sha256sum.txt.
#
# Environment:
#   SKIFF_BUILD_ARCHES  architectures to build (default "amd64 arm64")
#   VERSION             version to stamp (default: git describe --tags --always --dirty)
#   COMMIT              commit to stamp (default: git rev-parse HEAD)
#   SOURCE_DATE_EPOCH   build date to stamp, for reproducible builds (default: now)
#   DIST_DIR            output directory (default: dist)
#   CC_amd64, CC_arm64  C cross compilers (defaults below)
#
# cgo is required: runc's libcontainer runs a C constructor (nsenter) when a
# container starts. The binary links glibc statically; the osusergo and netgo
# tags keep the Go side off glibc's NSS (getpwnam, getaddrinfo), which cannot
# work from a static binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Size limits in bytes, per architecture: the size measured when the limit
# was last set, plus 10%. A build that grows past them fails, so growth is a
# decision rather than an accident; raise them here when it is one.
#   amd64: 95022256 bytes measured (go1.26.8), after CRDs (apiextensions'
#          schema packages and CEL), server-side apply (managedfields and
#          the applyconfigurations schemas), OpenAPI and RBAC were added;
#          it was 81101488 before them
#   arm64: 75526152 bytes measured before them; the limit assumes the same
#          17% growth as amd64 (not measured: no cross compiler here)
declare -A MAX_BYTES=([amd64]=104524481 [arm64]=97343000)

# What `file` says for each architecture.
declare -A FILE_ARCH=([amd64]="x86-64" [arm64]="ARM aarch64")
# The Debian cross compiler and the packages that provide it (compiler and
# static C library).
declare -A CROSS_CC=([amd64]="x86_64-linux-gnu-gcc" [arm64]="aarch64-linux-gnu-gcc")
declare -A CROSS_PKGS=([amd64]="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" [arm64]="gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
declare -A QEMU=([amd64]="qemu-x86_64-static" [arm64]="qemu-aarch64-static")

arches=${SKIFF_BUILD_ARCHES:-amd64 arm64}
dist=${DIST_DIR:-dist}

die() {
	echo "build.sh: $*" >&2
	exit 1
}

command -v go >/dev/null || die "the go tool is not on PATH (install Go, see go.mod for the version)"
command -v file >/dev/null || die "file(1) is needed to check the binaries: apt-get install file"

case "$(uname -m)" in
x86_64) host_arch=amd64 ;;
aarch64 | arm64) host_arch=arm64 ;;
*) host_arch=$(uname -m) ;;
esac

git_ok=false
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
	git_ok=true
fi
if [ -z "${VERSION:-}" ]; then
	if $git_ok; then
		VERSION=$(git describe --tags --always --dirty)
	else
		VERSION=dev
	fi
fi
if [ -z "${COMMIT:-}" ]; then
	if $git_ok; then
		COMMIT=$(git rev-parse HEAD)
	else
		COMMIT=unknown
	fi
fi
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	BUILD_DATE=$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)
else
	BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi

# Check every compiler before building anything, so a missing one is
# reported at once rather than after a long amd64 build.
declare -A cc
for arch in $arches; do
	[ -n "${FILE_ARCH[$arch]:-}" ] || die "unknown architecture $arch (known: ${!FILE_ARCH[*]})"
	var=CC_$arch
	if [ -n "${!var:-}" ]; then
		cc[$arch]=${!var}
	elif [ "$arch" = "$host_arch" ]; then
		cc[$arch]=${CC:-gcc}
	else
		cc[$arch]=${CROSS_CC[$arch]}
	fi
	native_pkgs="gcc libc6-dev"
	pkgs=${CROSS_PKGS[$arch]}
	[ "$arch" = "$host_arch" ] && pkgs=$native_pkgs
	if ! command -v "${cc[$arch]}" >/dev/null; then
		die "no C compiler for $arch (${cc[$arch]}): apt-get install $pkgs
  (or build only some architectures, e.g. SKIFF_BUILD_ARCHES=$host_arch $0)"
	fi
	# A static link needs the C library's archive, which the -dev package has.
	libc=$("${cc[$arch]}" -print-file-name=libc.a)
	if [ ! -f "$libc" ]; then
		die "no static C library for $arch (${cc[$arch]} cannot find libc.a): apt-get install $pkgs"
	fi
done

mkdir -p "$dist"
ldflags="-s -w -extldflags -static"
ldflags+=" -X skiff/internal/cli.Version=$VERSION"
ldflags+=" -X skiff/internal/cli.Commit=$COMMIT"
ldflags+=" -X skiff/internal/cli.BuildDate=$BUILD_DATE"

echo "skiff $VERSION (commit $COMMIT, built $BUILD_DATE), $(go version)"
built=()
for arch in $arches; do
	out="$dist/skiff-$arch"
	echo "==> building $out (CC=${cc[$arch]})"
	start=$(date +%s)
	CGO_ENABLED=1 GOOS=linux GOARCH="$arch" CC="${cc[$arch]}" \
		go build -trimpath -tags osusergo,netgo -ldflags "$ldflags" -o "$out" .
	echo "    built in $(($(date +%s) - start))s"

	desc=$(file -b "$out")
	case "$desc" in
	*"statically linked"*) ;;
	*) die "$out is not statically linked: $desc" ;;
	esac
	case "$desc" in
	*"${FILE_ARCH[$arch]}"*) ;;
	*) die "$out is not a ${FILE_ARCH[$arch]} binary: $desc" ;;
	esac
	echo "    file: $desc"

	runner=()
	if [ "$arch" != "$host_arch" ]; then
		runner=("${QEMU[$arch]}")
	fi
	if [ "${#runner[@]}" -eq 0 ] || command -v "${runner[0]}" >/dev/null; then
		got=$("${runner[@]}" "$out" version) || die "$out version failed: $got"
		case "$got" in
		"skiff version $VERSION "*) ;;
		*) die "$out version printed an unexpected version: $got" ;;
		esac
		echo "    ran: ${runner[*]:+${runner[*]} }$out version: $(head -n1 <<<"$got")"
	else
		echo "    not run: ${QEMU[$arch]} is missing (apt-get install qemu-user-static to run it)"
	fi

	size=$(stat -c %s "$out")
	max=${MAX_BYTES[$arch]}
	echo "    size: $size bytes ($((size / 1024 / 1024)) MiB), limit $max"
	if [ "$size" -gt "$max" ]; then
		die "$out is $size bytes, over the $max limit for $arch; find what grew, or raise MAX_BYTES in $0"
	fi
	built+=("skiff-$arch")
done

(cd "$dist" && sha256sum "${built[@]}" >sha256sum.txt)
echo "==> $dist/sha256sum.txt"
cat "$dist/sha256sum.txt"
