#!/usr/bin/env bash
# `make image`: the portway image as a docker-archive tarball, with no registry and no daemon.
#   build-image.sh BINARY OUT.tar REF
# BINARY is the release build (--static-swift-stdlib, the BPF object embedded); the root filesystem
# is a minimal Debian bookworm (debootstrap --variant=minbase) with only the runtime libraries:
# libcurl4, libbpf1, libelf1, ca-certificates. The agent execs nothing. Needs root (debootstrap)
# and ../shared/kube/node (debian-base.sh, image.py); without it, build deploy/Containerfile with
# Docker or Podman instead. Prints the tarball's path and the image reference.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 3 ] || { echo "usage: build-image.sh BINARY OUT.tar REF" >&2; exit 2; }
binary=$1 out=$2 ref=$3
node=${PORTWAY_NODE_TOOLS:-../shared/kube/node}
[ "$(id -u)" = 0 ] || { echo "make image: needs root (debootstrap); or build deploy/Containerfile with Docker/Podman" >&2; exit 1; }
[ -x "$node/debian-base.sh" ] && [ -f "$node/image.py" ] ||
  { echo "make image: $node/debian-base.sh and image.py not found; build deploy/Containerfile with Docker/Podman instead" >&2; exit 1; }
[ -x "$binary" ] || { echo "make image: $binary not built" >&2; exit 1; }
# The image must not need the build tree: the datapath object is in the binary.
if ! "$binary" version | grep -q '^portway: '; then echo "make image: $binary does not run" >&2; exit 1; fi
missing=$(ldd "$binary" | awk '/not found/ {print $1}')
[ -z "$missing" ] || { echo "make image: $binary needs libraries not found here: $missing" >&2; exit 1; }
if ldd "$binary" | grep -q 'libswiftCore'; then echo "make image: $binary links the Swift runtime dynamically (build with --static-swift-stdlib)" >&2; exit 1; fi

rootfs=$(dirname "$out")/portway-image-rootfs
rm -rf --one-file-system "$rootfs"
"$node/debian-base.sh" "$rootfs" libcurl4 libbpf1 libelf1 ca-certificates >/dev/null
# Every library the binary links must come from the base (nothing copied from the build machine).
for lib in $(ldd "$binary" | awk '$2 == "=>" {print $1}'); do
  found=$(find "$rootfs/lib" "$rootfs/usr/lib" -name "$lib" -print -quit 2>/dev/null)
  [ -n "$found" ] || { echo "make image: $lib (linked by portway) is not in the Debian base" >&2; exit 1; }
done
install -D -m 0755 "$binary" "$rootfs/usr/bin/portway"
# DWARF off (about 40 MB); the symbol table stays for backtraces.
strip --strip-debug "$rootfs/usr/bin/portway"
version=$("$binary" version | awk '/^portway: / {print $2}')
commit=$("$binary" version | awk '/^commit: / {print $2}')
python3 "$node/image.py" "$out" "$ref" --rootfs "$rootfs" --entrypoint '["/usr/bin/portway"]' --cmd '["agent"]' \
  --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.revision=$commit" \
  --label "org.opencontainers.image.source=https://github.com/portway/portway" 2>/dev/null
rm -rf --one-file-system "$rootfs"
echo "image: $out"
echo "reference: $ref"
