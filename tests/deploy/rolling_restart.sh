#!/usr/bin/env bash
# Rolling restart of three replicas behind nginx (deploy/local/three-replicas.sh) with
# scripts/rolling-restart.sh, while tests/deploy/lb_client.py logs in and reads through the load
# balancer every 50 ms. Passes when the client saw no failed request and its session was never
# refused; prints the client's figures.
#
#   tests/deploy/rolling_restart.sh [WORK_DIR]     (KUBOARD_BIN: the binary, default target/release/kuboard)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /tmp/kuboard-rolling.XXXXXX)}
mkdir -p "$work"
group=$work/group
client_pid=""

cleanup() {
  if [ -n "$client_pid" ] && kill -0 "$client_pid" 2>/dev/null; then
    kill "$client_pid" 2>/dev/null || true
  fi
  if [ -f "$group/env" ]; then
    "$root/deploy/local/three-replicas.sh" down "$group" >/dev/null || true
  fi
}
trap cleanup EXIT

"$root/deploy/local/three-replicas.sh" up "$group"
# shellcheck disable=SC1091
. "$group/env"

# The first login must change the default password before other API calls are allowed.
password="rolling-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
token=$(curl -fsS -X POST "$LB_URL/kuboard-api/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"Kuboard123"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
export KUBOARD_TOKEN=$token
curl -fsS -o /dev/null -X POST "$LB_URL/kuboard-api/auth/password" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d "{\"current_password\":\"Kuboard123\",\"new_password\":\"$password\"}"

stop_file=$work/stop
rm -f "$stop_file"
python3 "$root/tests/deploy/lb_client.py" --url "$LB_URL" --password "$password" \
  --stop-file "$stop_file" --max-seconds 600 >"$work/client.json" 2>"$work/client.err" &
client_pid=$!
# Let the client run against the whole group first (bounded: 40 ticks).
for _ in $(seq 1 40); do
  kill -0 "$client_pid" 2>/dev/null || break
  sleep 0.05
done

restart_status=0
"$root/scripts/rolling-restart.sh" --local "$group" --timeout 120 || restart_status=$?
# And a little after the last restart.
for _ in $(seq 1 40); do sleep 0.05; done
touch "$stop_file"
client_status=0
wait "$client_pid" || client_status=$?
client_pid=""

echo "rolling restart client figures: $(cat "$work/client.json")"
[ -s "$work/client.err" ] && cat "$work/client.err" >&2
if [ "$restart_status" -ne 0 ]; then
  echo "FAIL: scripts/rolling-restart.sh exited $restart_status" >&2
  exit 1
fi
if [ "$client_status" -ne 0 ]; then
  echo "FAIL: the client saw failed requests or lost its session (figures above)" >&2
  exit 1
fi
echo "PASS: rolling restart of 3 replicas, no failed request, session kept"
