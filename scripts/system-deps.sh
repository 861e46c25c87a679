#!/usr/bin/env bash
# The system packages Warren's test suite runs against, installed from Debian when missing.
#
#   scripts/system-deps.sh                 chromium (browser tests), bubblewrap, nftables and
#                                          e2fsprogs (the local sandbox driver, its loopback guard
#                                          and its per-sandbox disks), the PostgreSQL 15 server
#                                          binaries (tests that start their own server: outages,
#                                          restarts, migrators)
#   scripts/system-deps.sh --with-docker   also docker.io and debootstrap (the docker driver's tests,
#                                          which otherwise skip with a printed reason)
#   scripts/system-deps.sh --check         only report what is missing (exit 1 if anything is)
#   scripts/system-deps.sh --help
#
# `bun run test` runs it before `bun test`; .ci/run runs it with --with-docker. Installing needs
# root (apt-get); as another user it names the packages to install and exits 1.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

with_docker=0
check_only=0
for arg in "$@"; do
  case "$arg" in
    --with-docker) with_docker=1 ;;
    --check) check_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "system-deps: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

# Debian keeps the server binaries off PATH, under /usr/lib/postgresql/VERSION/bin; that is where
# scripts/pg-cluster.sh looks too.
pg_bin() { ls /usr/lib/postgresql/15/bin/"$1" 2>/dev/null || command -v "$1" 2>/dev/null || true; }
have() { PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

missing=()
have chromium || missing+=(chromium)
have bwrap || missing+=(bubblewrap)
have nft || missing+=(nftables)
# mkfs.ext4, e2fsck, resize2fs: each local sandbox's own disk (src/orchestrator/local-disk.ts).
have mkfs.ext4 && have resize2fs || missing+=(e2fsprogs)
{ [ -n "$(pg_bin initdb)" ] && [ -n "$(pg_bin pg_ctl)" ]; } || missing+=(postgresql-15)
if [ "$with_docker" = 1 ]; then
  have dockerd || missing+=(docker.io)
  have debootstrap || missing+=(debootstrap)
fi

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$check_only" = 1 ]; then
  echo "system-deps: missing ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ] || ! have apt-get; then
  echo "system-deps: the tests need ${missing[*]}; install them (Debian: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]} from Debian (once; a minute or two)…" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
echo "system-deps: installed ${missing[*]}" >&2
