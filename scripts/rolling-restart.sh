#!/usr/bin/env bash
# Restarts (or upgrades) kuboard replicas one at a time without the service going down: before each
# replica the whole group must be ready; after it, the replica must answer /readyz again and, on the
# embedded store, its member must have applied everything the leader had committed.
#
#   scripts/rolling-restart.sh --urls "URL1 URL2 URL3" --restart 'COMMAND {n}' [--timeout SECONDS]
#   scripts/rolling-restart.sh --local DIR [--timeout SECONDS]
#
#   --urls      every replica's own web URL (not the load balancer), in order 1..N
#   --restart   a shell command restarting replica {n} (1-based) and returning once it is stopped
#               and started again, e.g.
#                 'ssh kuboard-{n} sudo systemctl restart kuboard'
#                 'docker restart kuboard-{n}'
#                 'kubectl -n kuboard delete pod kuboard-$(({n}-1)) --wait'
#   --local     the group of deploy/local/three-replicas.sh in DIR (stop and start with its script)
#   --timeout   seconds to wait for each replica's readiness and catch-up (default 120)
#
# What it reads: GET /readyz (200 when the replica serves), GET /metrics (kuboard_raft_applied_index
# of the restarted member, kuboard_raft_commit_index and kuboard_raft_is_leader of the leader) and
# GET /kuboard-api/system/status (members, printed when KUBOARD_TOKEN holds a session token or an
# access key). On an external etcd there are no Raft figures: readiness
# alone is waited for. Exit 0 when every replica was restarted and caught up; 1 otherwise (the
# replica it stopped at is named, the rest are left untouched).
set -euo pipefail

urls=""
restart=""
local_dir=""
timeout=120
here=$(cd "$(dirname "$0")" && pwd)

usage() {
  sed -n '5,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --urls) urls=${2:?}; shift 2 ;;
    --restart) restart=${2:?}; shift 2 ;;
    --local) local_dir=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "rolling-restart: unknown argument '$1'" >&2; usage ;;
  esac
done
case "$timeout" in '' | *[!0-9]*) echo "rolling-restart: --timeout takes seconds, not '$timeout'" >&2; exit 2 ;; esac

if [ -n "$local_dir" ]; then
  [ -f "$local_dir/env" ] || { echo "rolling-restart: $local_dir/env not found (deploy/local/three-replicas.sh up $local_dir)" >&2; exit 2; }
  # shellcheck disable=SC1091
  urls=$(. "$local_dir/env" && echo "$REPLICA_URLS")
  script="$here/../deploy/local/three-replicas.sh"
  restart="'$script' stop {n} '$local_dir' && '$script' start {n} '$local_dir'"
fi
[ -n "$urls" ] && [ -n "$restart" ] || usage

read -r -a replicas <<<"$urls"
count=${#replicas[@]}

log() {
  echo "rolling-restart: $(date -u +%H:%M:%S.%N | cut -c1-12) $*"
}

# metric URL NAME: the value of an unlabelled metric, or empty.
metric() {
  curl -fsS --max-time 2 "$1/metrics" 2>/dev/null | awk -v name="$2" '$1 == name { print $2; exit }'
}

ready() {
  curl -fsS -o /dev/null --max-time 2 "$1/readyz" 2>/dev/null
}

# The leader's commit index, read from whichever replica says it leads; empty if none answers.
leader_commit_index() {
  local url
  for url in "${replicas[@]}"; do
    if [ "$(metric "$url" kuboard_raft_is_leader)" = 1 ]; then
      metric "$url" kuboard_raft_commit_index
      return 0
    fi
  done
}

wait_group_ready() {
  local deadline=$((SECONDS + timeout)) url all
  while :; do
    all=1
    for url in "${replicas[@]}"; do
      ready "$url" || { all=0; break; }
    done
    [ "$all" = 1 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "not every replica is ready after ${timeout}s ($url is not): not restarting anything" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Waits until replica URL is ready and (embedded store) has applied the leader's commit index as it
# was once the replica came back.
wait_caught_up() {
  local url=$1 n=$2 deadline=$((SECONDS + timeout)) target="" applied
  while ! ready "$url"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "replica $n ($url) not ready ${timeout}s after its restart; stopping here" >&2
      return 1
    fi
    sleep 0.2
  done
  log "replica $n ready"
  if [ -z "$(metric "$url" kuboard_raft_applied_index)" ]; then
    log "replica $n has no Raft figures (external etcd): readiness is enough"
    return 0
  fi
  while :; do
    [ -n "$target" ] || target=$(leader_commit_index)
    applied=$(metric "$url" kuboard_raft_applied_index)
    if [ -n "$target" ] && [ -n "$applied" ] && [ "$applied" -ge "$target" ]; then
      log "replica $n caught up: applied index $applied, leader's commit index was $target"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "replica $n did not catch up within ${timeout}s (applied ${applied:-?}, leader's commit ${target:-unknown})" >&2
      return 1
    fi
    sleep 0.2
  done
}

# With KUBOARD_TOKEN (a session token or access key) set, the members as a replica sees them.
members_line() {
  [ -n "${KUBOARD_TOKEN:-}" ] || return 0
  curl -fsS --max-time 2 -H "authorization: Bearer $KUBOARD_TOKEN" "$1/kuboard-api/system/status" 2>/dev/null |
    python3 -c 'import json,sys
s=json.load(sys.stdin)
print("leader %s; members %s" % (s.get("leader"), ", ".join("%s:%s" % (m.get("id"), m.get("role")) for m in s.get("members", []))))' 2>/dev/null || true
}

started=$SECONDS
for i in $(seq 1 "$count"); do
  url=${replicas[$((i - 1))]}
  wait_group_ready || exit 1
  log "restarting replica $i ($url) $(members_line "$url")"
  command=${restart//\{n\}/$i}
  if ! bash -c "$command"; then
    log "the restart command for replica $i failed: $command" >&2
    exit 1
  fi
  wait_caught_up "$url" "$i" || exit 1
done
wait_group_ready || exit 1
log "all $count replicas restarted in $((SECONDS - started))s $(members_line "${replicas[0]}")"
