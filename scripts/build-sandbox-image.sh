#!/usr/bin/env bash
# Builds the Docker sandbox image locally: no registry can be pulled from here (FIELD-NOTES).
#   debootstrap --variant=minbase bookworm  +  the opencode binary from node_modules  →  docker import
#
# Usage: scripts/build-sandbox-image.sh [TAG...]        (default tag: warren/sandbox-bare:latest)
# Env:   DOCKER_HOST          e.g. unix:///tmp/x/docker.sock (default: the system socket)
#        WARREN_IMAGE_CACHE   where the debootstrapped root file system is kept
#                             (default: ${XDG_CACHE_HOME:-$HOME/.cache}/warren/sandbox-rootfs)
#        DEBIAN_MIRROR        default: the first URI of /etc/apt/sources.list.d/debian.sources
#        OPENCODE_BIN         default: node_modules/opencode-linux-x64/bin/opencode
# Cached twice: the root file system is debootstrapped once; an image whose label already names
# this opencode version and rootfs is not rebuilt, so a second run takes about a second.
# Only the "bare" flavor (the agent alone) is what this image really is: tag other flavors with
# it only for tests, never to pretend a toolchain is there.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tags=("$@")
[ ${#tags[@]} -gt 0 ] || tags=("warren/sandbox-bare:latest")
cache="${WARREN_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/warren/sandbox-rootfs}"
rootfs="$cache/bookworm-minbase"
bin="${OPENCODE_BIN:-}"
if [ -z "$bin" ]; then
  for p in opencode-linux-x64 opencode-linux-x64-baseline opencode-linux-arm64; do
    if [ -x "$root/node_modules/$p/bin/opencode" ]; then bin="$root/node_modules/$p/bin/opencode"; break; fi
  done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "opencode binary not found: run bun install (or set OPENCODE_BIN)" >&2; exit 1; }
for tool in docker debootstrap; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y docker.io debootstrap" >&2; exit 1; }
done

version="$("$bin" --version)"
bin_sum="$(sha256sum "$bin" | cut -c1-16)"
stamp="opencode-$version-$bin_sum"

# Fast path: every tag already carries this exact build.
up_to_date=1
for tag in "${tags[@]}"; do
  have="$(docker image inspect --format '{{ index .Config.Labels "warren.build" }}' "$tag" 2>/dev/null || true)"
  [ "$have" = "$stamp" ] || up_to_date=0
done
if [ "$up_to_date" = 1 ]; then echo "sandbox image up to date: ${tags[*]} ($stamp)"; exit 0; fi

if [ ! -f "$rootfs/.warren-complete" ]; then
  mirror="${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rm -rf "$rootfs"
  mkdir -p "$cache"
  echo "debootstrapping bookworm (minbase) from $mirror into $rootfs" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2
  # The image's default unprivileged user. The docker driver runs each sandbox as a host uid of its
  # own instead (src/orchestrator/docker-uids.ts), with no passwd entry, like the local driver's.
  echo "sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/bash" >>"$rootfs/etc/passwd"
  echo "sandbox:x:1000:" >>"$rootfs/etc/group"
  echo "sandbox:*:19000:0:99999:7:::" >>"$rootfs/etc/shadow"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  touch "$rootfs/.warren-complete"
fi
mkdir -p "$rootfs/home/sandbox" "$rootfs/home/workspace"
chown 1000:1000 "$rootfs/home/sandbox" "$rootfs/home/workspace"
chmod 0700 "$rootfs/home/sandbox"
install -m 0755 "$bin" "$rootfs/usr/local/bin/opencode"

first="${tags[0]}"
tar -C "$rootfs" --exclude=./.warren-complete -c . | docker import \
  --change "LABEL warren.build=$stamp" \
  --change "USER 1000:1000" \
  --change "WORKDIR /home/workspace" \
  --change "ENV HOME=/home/sandbox PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8" \
  --change 'CMD ["/usr/local/bin/opencode","serve","--hostname","127.0.0.1"]' \
  - "$first" >/dev/null
for tag in "${tags[@]:1}"; do docker tag "$first" "$tag"; done
echo "built sandbox image: ${tags[*]} ($stamp)"
