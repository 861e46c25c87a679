#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/pg-cluster.sh start [DIR]   initdb into DIR (default: a new temp dir), start it on a free
#                                       loopback port, print shell exports (eval them)
#   scripts/pg-cluster.sh stop DIR      stop the cluster in DIR and remove DIR
#   scripts/pg-cluster.sh --help
#
# `eval "$(scripts/pg-cluster.sh start)"` sets PG_CLUSTER_DIR and TEST_DATABASE_URL. The cluster is
# tuned for tests (fsync off): never keep data you care about in it. initdb refuses to run as
# root, so as root the cluster runs as the `postgres` user. PG_CLUSTER_OPTIONS adds server
# options to `start` (e.g. "-c wal_level=minimal -c max_wal_senders=0").
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

# PostgreSQL 15 (what CI tests against) first, then whatever is on PATH, then any other version.
find_bin() {
  local name=$1
  if [ -x "/usr/lib/postgresql/15/bin/$name" ]; then echo "/usr/lib/postgresql/15/bin/$name"; return; fi
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/$name" ]; then echo "$d/$name"; return; fi
  done
  echo "pg-cluster: $name not found; install the PostgreSQL server (e.g. apt-get install postgresql)" >&2
  exit 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Progress for a person at a terminal, on stderr: stdout is for eval.
progress() { if [ -t 2 ]; then echo "pg-cluster: $*" >&2; fi; }

# A free port below the kernel's ephemeral range (as src/orchestrator/processes.ts picks them):
# there, no outgoing connection can take it before the server binds it.
free_port() {
  node -e '
const net = require("net"), fs = require("fs");
let lo = 49152;
try { lo = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || lo; } catch {}
const tryPort = (left) => {
  const port = lo - 10000 > 1000 && left > 0 ? 10000 + Math.floor(Math.random() * (lo - 10000)) : 0;
  const s = net.createServer();
  s.once("error", () => tryPort(left - 1));
  s.listen(port, "127.0.0.1", () => { console.log(s.address().port); s.close(); });
};
tryPort(50);'
}

cmd=${1:-}
case "$cmd" in
  start)
    initdb=$(find_bin initdb); pg_ctl=$(find_bin pg_ctl)
    dir=${2:-$(mktemp -d /tmp/warren-pg.XXXXXX)}
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
      chown postgres "$dir"
      chmod 700 "$dir"
    fi
    port=$(free_port)
    progress "initdb into $dir/data ($("$initdb" --version))"
    as_owner "$initdb" -D "$dir/data" --auth=trust --username=postgres --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
      -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 ${PG_CLUSTER_OPTIONS:-}" \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    progress "started on 127.0.0.1:$port; stop it with: bash scripts/pg-cluster.sh stop $dir"
    echo "export PG_CLUSTER_DIR=$dir"
    echo "export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    dir=${2:?usage: pg-cluster.sh stop DIR}
    pg_ctl=$(find_bin pg_ctl)
    progress "stopping the cluster in $dir and removing it"
    if [ -d "$dir/data" ]; then as_owner "$pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
