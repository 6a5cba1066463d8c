#!/usr/bin/env bash
# Three kuboard replicas (an embedded Raft group, no etcd) and an nginx load balancer, all on
# loopback, from a built binary. For trying the high-availability mode on one machine, and for the
# tests and docs that need such a group.
#
#   deploy/local/three-replicas.sh up DIR        start everything, wait for /readyz through the LB
#   deploy/local/three-replicas.sh down DIR      stop exactly the processes `up` started
#   deploy/local/three-replicas.sh kill N DIR    SIGKILL replica N (1..3)
#   deploy/local/three-replicas.sh stop N DIR    SIGTERM replica N and wait for it to exit
#   deploy/local/three-replicas.sh start N DIR   start replica N again (same data dir and ports)
#   deploy/local/three-replicas.sh status DIR    one line per process: running or not
#
# DIR/env (a shell fragment, `. DIR/env`) names what runs: LB_URL, REPLICA_URLS (space-separated),
# REPLICA_URL_N, REPLICA_HTTPS_URL_N (each replica's HTTPS port), LB_HTTPS_URL (the load balancer's
# TCP pass-through to them), PID_N (one per replica, empty when it does not run), PIDS (the running
# replicas' pids), LB_PID, LB_KIND, and the ports. DIR/secrets (mode 600) holds the generated
# KUBOARD_CLUSTER_SECRET and KUBOARD_SSO_CLIENT_SECRET. Logs: DIR/replica-N/log, DIR/nginx/error.log.
#
# Settings (environment):
#   KUBOARD_BIN   the binary (default target/release/kuboard)
#   LB            nginx (default: deploy/lb/nginx.conf) or haproxy (deploy/lb/haproxy.cfg)
#   NGINX_BIN     nginx (default: nginx on PATH or /usr/sbin/nginx); HAPROXY_BIN likewise
#   LB_PORT, WEB_PORTS, RAFT_PORTS, AGENT_PORTS, LB_HTTPS_PORT, HTTPS_PORTS
#                 fixed ports ("p1 p2 p3" for the lists); unset: free ports chosen at `up`
#   READY_TIMEOUT seconds to wait for readiness (default 60)
#   Any other KUBOARD_* variable is passed to the replicas unchanged.
set -euo pipefail

usage() {
  sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "three-replicas: $*" >&2
  exit 1
}

REPLICAS=3

# Free TCP ports on 127.0.0.1, as many as asked, all different. A port is free when binding it
# works; the kernel hands out port-0 binds, and each is closed before the replica takes it.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

random_secret() {
  # 32 hex characters (128 bits) from the kernel's generator.
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

# Waits until URL answers 200 or the deadline passes.
wait_http_ok() {
  local url=$1 seconds=$2 deadline
  deadline=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

load_env() {
  local dir=$1
  [ -f "$dir/env" ] || die "$dir/env not found: run '$0 up $dir' first"
  # shellcheck disable=SC1091
  . "$dir/env"
}

# Rewrites one NAME=value line of DIR/env, and PIDS (the running replicas' pids) after a PID_N.
set_env_value() {
  local dir=$1 name=$2 value=$3
  sed -i "s|^$name=.*|$name=$value|" "$dir/env"
  case "$name" in
    PID_*)
      local pids
      pids=$(sed -n 's/^PID_[0-9]=\([0-9][0-9]*\)$/\1/p' "$dir/env" | tr '\n' ' ' | sed 's/ $//')
      sed -i "s|^PIDS=.*|PIDS=\"$pids\"|" "$dir/env"
      ;;
  esac
}

start_replica() {
  local dir=$1 n=$2 bin peers agent_endpoints
  load_env "$dir"
  # shellcheck disable=SC1091
  . "$dir/secrets"
  local pid_var="PID_$n"
  if pid_alive "${!pid_var:-}"; then
    die "replica $n already runs (pid ${!pid_var})"
  fi
  bin=$KUBOARD_BIN_PATH
  local web_port raft_port agent_port https_port
  web_port=$(echo "$WEB_PORTS" | cut -d' ' -f"$n")
  https_port=$(echo "$HTTPS_PORTS" | cut -d' ' -f"$n")
  raft_port=$(echo "$RAFT_PORTS" | cut -d' ' -f"$n")
  agent_port=$(echo "$AGENT_PORTS" | cut -d' ' -f"$n")
  peers=""
  agent_endpoints=""
  local i p a
  for i in $(seq 1 "$REPLICAS"); do
    p=$(echo "$RAFT_PORTS" | cut -d' ' -f"$i")
    a=$(echo "$AGENT_PORTS" | cut -d' ' -f"$i")
    peers="${peers:+$peers,}$i=127.0.0.1:$p"
    agent_endpoints="${agent_endpoints:+$agent_endpoints,}127.0.0.1:$a"
  done
  mkdir -p "$dir/replica-$n/data"
  (
    cd "$dir/replica-$n"
    export KUBOARD_RAFT_NODE_ID=$n
    export KUBOARD_RAFT_PEERS=$peers
    export KUBOARD_CLUSTER_SECRET KUBOARD_SSO_CLIENT_SECRET
    export KUBOARD_DATA_DIR=$dir/replica-$n/data
    export KUBOARD_SERVER_ADDR=127.0.0.1
    export KUBOARD_SERVER_PORT=$web_port
    export KUBOARD_SERVER_HTTPS_PORT=$https_port
    export KUBOARD_RAFT_PORT=$raft_port
    export KUBOARD_AGENT_SERVER_TCP_PORT=$agent_port
    export KUBOARD_AGENT_ENDPOINT=$agent_endpoints
    export KUBOARD_ENDPOINT=$LB_URL
    export KUBOARD_TRUSTED_PROXIES=${KUBOARD_TRUSTED_PROXIES:-127.0.0.1}
    # nohup execs the binary: $! is the replica's own pid.
    nohup "$bin" serve >>"$dir/replica-$n/log" 2>&1 </dev/null &
    echo $! >"$dir/replica-$n/pid"
  )
  local pid
  pid=$(cat "$dir/replica-$n/pid")
  set_env_value "$dir" "PID_$n" "$pid"
  echo "three-replicas: replica $n started (pid $pid, web $web_port, raft $raft_port, agent $agent_port)"
}

# DIR/nginx/nginx.conf: deploy/lb/nginx.conf (the bare-host load balancer) with loopback
# addresses and ports, paths under DIR and `daemon off`; every proxy setting is that file's.
write_nginx_conf() {
  local dir=$1 lb_port=$2 web_ports=$3 lb_https_port=$4 https_ports=$5 template
  template=$(dirname "$0")/../lb/nginx.conf
  [ -f "$template" ] || die "$template not found"
  mkdir -p "$dir/nginx/tmp"
  # When nginx runs as root its workers run as nobody: they need to write the temp dirs.
  chmod 0777 "$dir/nginx/tmp"
  python3 - "$template" "$dir/nginx" "$lb_port" "$lb_https_port" $web_ports $https_ports >"$dir/nginx/nginx.conf" <<'PY'
import re, sys
template, out, lb_port, lb_https_port = sys.argv[1:5]
ports, https_ports = sys.argv[5:8], sys.argv[8:11]
text = open(template).read()
for target, port_list in ((80, ports), (443, https_ports)):
    servers = [m for m in re.finditer(r"^(\s*)server \S+:%d( .*;)$" % target, text, re.M)]
    if len(servers) != 3:
        sys.exit("expected three upstream servers on port %d in %s" % (target, template))
    indent, options = servers[0].group(1), servers[0].group(2)
    block = "".join("%sserver 127.0.0.1:%s%s\n" % (indent, p, options) for p in port_list)
    text = text[: servers[0].start()] + block.rstrip("\n") + text[servers[-1].end():]
replacements = [
    (r"^worker_processes .*;$", "daemon off;\nworker_processes 1;"),
    (r"^error_log .*;$", "error_log %s/error.log warn;" % out),
    (r"^pid .*;$", "pid %s/nginx.pid;" % out),
    (r"^(\s*)access_log .*;$",
     r"\1access_log %s/access.log;\n\1client_body_temp_path %s/tmp/body;\n\1proxy_temp_path %s/tmp/proxy;\n"
     r"\1fastcgi_temp_path %s/tmp/fastcgi;\n\1uwsgi_temp_path %s/tmp/uwsgi;\n\1scgi_temp_path %s/tmp/scgi;"
     % ((out,) * 6)),
    (r"^(\s*)listen 80;$", r"\1listen 127.0.0.1:%s;" % lb_port),
    (r"^(\s*)listen 443;$", r"\1listen 127.0.0.1:%s;" % lb_https_port),
    (r"^(\s*)worker_connections .*;$", r"\1worker_connections 1024;"),
]
for pattern, replacement in replacements:
    text, count = re.subn(pattern, replacement, text, flags=re.M)
    if count != 1:
        sys.exit("%s: expected one match of %s" % (template, pattern))
sys.stdout.write("# Generated by deploy/local/three-replicas.sh from deploy/lb/nginx.conf.\n" + text)
PY
}

# DIR/haproxy/haproxy.cfg: deploy/lb/haproxy.cfg with loopback addresses and ports.
write_haproxy_conf() {
  local dir=$1 lb_port=$2 web_ports=$3 lb_https_port=$4 https_ports=$5 template
  template=$(dirname "$0")/../lb/haproxy.cfg
  [ -f "$template" ] || die "$template not found"
  mkdir -p "$dir/haproxy"
  python3 - "$template" "$lb_port" "$lb_https_port" $web_ports $https_ports >"$dir/haproxy/haproxy.cfg" <<'PY'
import re, sys
template, lb_port, lb_https_port = sys.argv[1:4]
ports, https_ports = sys.argv[4:7], sys.argv[7:10]
text = open(template).read()
for bind, port in ((":80", lb_port), (":443", lb_https_port)):
    text, count = re.subn(r"^(\s*)bind %s$" % bind, r"\g<1>bind 127.0.0.1:%s" % port, text, flags=re.M)
    if count != 1:
        sys.exit("expected one 'bind %s' in %s" % (bind, template))
# The HTTPS servers are checked on their replica's web port, which differs per replica here.
text, count = re.subn(r" check port 80 ", " check ", text)
if count != 1:
    sys.exit("expected one 'check port 80' in " + template)
for target, port_list, suffix in ((80, ports, ""), (443, https_ports, " check port %s")):
    servers = list(re.finditer(r"^(\s*)server (\S+) \S+:%d$" % target, text, re.M))
    if len(servers) != 3:
        sys.exit("expected three servers on port %d in %s" % (target, template))
    for match, port, web in reversed(list(zip(servers, port_list, ports))):
        line = "%sserver %s 127.0.0.1:%s" % (match.group(1), match.group(2), port)
        line += suffix % web if suffix else ""
        text = text[: match.start()] + line + text[match.end():]
sys.stdout.write("# Generated by deploy/local/three-replicas.sh from deploy/lb/haproxy.cfg.\n" + text)
PY
}

lb_kind() {
  case "${LB:-nginx}" in
    nginx | haproxy) echo "${LB:-nginx}" ;;
    *) die "LB must be nginx or haproxy, not '${LB}'" ;;
  esac
}

haproxy_bin() {
  if [ -n "${HAPROXY_BIN:-}" ]; then
    echo "$HAPROXY_BIN"
  elif command -v haproxy >/dev/null 2>&1; then
    command -v haproxy
  elif [ -x /usr/sbin/haproxy ]; then
    echo /usr/sbin/haproxy
  else
    die "haproxy not found: install Debian's haproxy or set HAPROXY_BIN"
  fi
}

nginx_bin() {
  if [ -n "${NGINX_BIN:-}" ]; then
    echo "$NGINX_BIN"
  elif command -v nginx >/dev/null 2>&1; then
    command -v nginx
  elif [ -x /usr/sbin/nginx ]; then
    echo /usr/sbin/nginx
  else
    die "nginx not found: install Debian's nginx (scripts/install-deps.sh test) or set NGINX_BIN"
  fi
}

cmd_up() {
  local dir=$1
  local bin=${KUBOARD_BIN:-target/release/kuboard}
  [ -x "$bin" ] || die "$bin is not an executable: build it (cargo build --release --bins) or set KUBOARD_BIN"
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  local kind lb_bin
  kind=$(lb_kind)
  if [ "$kind" = nginx ]; then lb_bin=$(nginx_bin); else lb_bin=$(haproxy_bin); fi
  command -v curl >/dev/null 2>&1 || die "curl not found"
  command -v python3 >/dev/null 2>&1 || die "python3 not found (used to pick free ports)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/env" ]; then
    # shellcheck disable=SC1091
    . "$dir/env"
    local i v
    for v in LB_PID PID_1 PID_2 PID_3; do
      if pid_alive "${!v:-}"; then
        die "$dir already has a running group ($v=${!v}); '$0 down $dir' first"
      fi
    done
  fi

  local lb_port web_ports raft_ports agent_ports lb_https_port https_ports
  if [ -n "${LB_PORT:-}" ] && [ -n "${WEB_PORTS:-}" ] && [ -n "${RAFT_PORTS:-}" ] && [ -n "${AGENT_PORTS:-}" ] &&
    [ -n "${LB_HTTPS_PORT:-}" ] && [ -n "${HTTPS_PORTS:-}" ]; then
    lb_port=$LB_PORT web_ports=$WEB_PORTS raft_ports=$RAFT_PORTS agent_ports=$AGENT_PORTS
    lb_https_port=$LB_HTTPS_PORT https_ports=$HTTPS_PORTS
  else
    local all
    all=$(free_ports 14)
    lb_port=${LB_PORT:-$(echo "$all" | cut -d' ' -f1)}
    web_ports=${WEB_PORTS:-$(echo "$all" | cut -d' ' -f2-4)}
    raft_ports=${RAFT_PORTS:-$(echo "$all" | cut -d' ' -f5-7)}
    agent_ports=${AGENT_PORTS:-$(echo "$all" | cut -d' ' -f8-10)}
    https_ports=${HTTPS_PORTS:-$(echo "$all" | cut -d' ' -f11-13)}
    lb_https_port=${LB_HTTPS_PORT:-$(echo "$all" | cut -d' ' -f14)}
  fi
  for v in $web_ports $raft_ports $agent_ports $https_ports $lb_port $lb_https_port; do
    case "$v" in
      '' | *[!0-9]*) die "bad port '$v' (LB_PORT, WEB_PORTS, RAFT_PORTS, AGENT_PORTS, LB_HTTPS_PORT, HTTPS_PORTS take numbers)" ;;
    esac
  done
  [ "$(echo "$web_ports" | wc -w)" -eq 3 ] || die "WEB_PORTS needs three ports"
  [ "$(echo "$raft_ports" | wc -w)" -eq 3 ] || die "RAFT_PORTS needs three ports"
  [ "$(echo "$agent_ports" | wc -w)" -eq 3 ] || die "AGENT_PORTS needs three ports"
  [ "$(echo "$https_ports" | wc -w)" -eq 3 ] || die "HTTPS_PORTS needs three ports"

  if [ ! -f "$dir/secrets" ]; then
    (
      umask 077
      cat >"$dir/secrets" <<EOF
KUBOARD_CLUSTER_SECRET=$(random_secret)
KUBOARD_SSO_CLIENT_SECRET=$(random_secret)
EOF
    )
  fi

  local replica_urls="" p n=0
  for p in $web_ports; do
    n=$((n + 1))
    replica_urls="${replica_urls:+$replica_urls }http://127.0.0.1:$p"
  done
  cat >"$dir/env" <<EOF
# Written by deploy/local/three-replicas.sh up; '. $dir/env' to use it.
KUBOARD_BIN_PATH=$bin
LB_PORT=$lb_port
LB_URL=http://127.0.0.1:$lb_port
WEB_PORTS="$web_ports"
RAFT_PORTS="$raft_ports"
AGENT_PORTS="$agent_ports"
HTTPS_PORTS="$https_ports"
LB_HTTPS_PORT=$lb_https_port
LB_HTTPS_URL=https://127.0.0.1:$lb_https_port
REPLICA_HTTPS_URL_1=https://127.0.0.1:$(echo "$https_ports" | cut -d' ' -f1)
REPLICA_HTTPS_URL_2=https://127.0.0.1:$(echo "$https_ports" | cut -d' ' -f2)
REPLICA_HTTPS_URL_3=https://127.0.0.1:$(echo "$https_ports" | cut -d' ' -f3)
REPLICA_URLS="$replica_urls"
REPLICA_URL_1=http://127.0.0.1:$(echo "$web_ports" | cut -d' ' -f1)
REPLICA_URL_2=http://127.0.0.1:$(echo "$web_ports" | cut -d' ' -f2)
REPLICA_URL_3=http://127.0.0.1:$(echo "$web_ports" | cut -d' ' -f3)
PID_1=
PID_2=
PID_3=
PIDS=""
LB_PID=
LB_KIND=
EOF

  for n in 1 2 3; do
    start_replica "$dir" "$n"
  done

  local lb_pid
  if [ "$kind" = nginx ]; then
    write_nginx_conf "$dir" "$lb_port" "$web_ports" "$lb_https_port" "$https_ports"
    "$lb_bin" -t -q -c "$dir/nginx/nginx.conf" -p "$dir/nginx" 2>>"$dir/nginx/error.log" ||
      die "nginx rejected $dir/nginx/nginx.conf (see $dir/nginx/error.log)"
    nohup "$lb_bin" -c "$dir/nginx/nginx.conf" -p "$dir/nginx" >>"$dir/nginx/stdout.log" 2>&1 </dev/null &
    lb_pid=$!
  else
    write_haproxy_conf "$dir" "$lb_port" "$web_ports" "$lb_https_port" "$https_ports"
    "$lb_bin" -c -q -f "$dir/haproxy/haproxy.cfg" >>"$dir/haproxy/log" 2>&1 ||
      die "haproxy rejected $dir/haproxy/haproxy.cfg (see $dir/haproxy/log)"
    # -db: stays in the foreground, so that $! is haproxy's own pid.
    nohup "$lb_bin" -db -f "$dir/haproxy/haproxy.cfg" >>"$dir/haproxy/log" 2>&1 </dev/null &
    lb_pid=$!
  fi
  set_env_value "$dir" LB_PID "$lb_pid"
  set_env_value "$dir" LB_KIND "$kind"
  echo "three-replicas: $kind started (pid $lb_pid, http://127.0.0.1:$lb_port)"

  local timeout=${READY_TIMEOUT:-60}
  load_env "$dir"
  for n in 1 2 3; do
    local url_var="REPLICA_URL_$n"
    if ! wait_http_ok "${!url_var}/readyz" "$timeout"; then
      echo "three-replicas: replica $n not ready after ${timeout}s; last log lines:" >&2
      tail -n 20 "$dir/replica-$n/log" >&2 || true
      cmd_down "$dir"
      exit 1
    fi
  done
  if ! wait_http_ok "$LB_URL/readyz" "$timeout"; then
    echo "three-replicas: the load balancer does not answer /readyz after ${timeout}s" >&2
    tail -n 20 "$dir/nginx/error.log" "$dir/haproxy/log" >&2 2>/dev/null || true
    cmd_down "$dir"
    exit 1
  fi
  echo "three-replicas: ready at $LB_URL (replicas $REPLICA_URLS); settings in $dir/env"
}

# Sends SIGNAL to PID and waits (up to SECONDS) for it to exit; SIGKILL after that.
stop_pid() {
  local pid=$1 signal=$2 seconds=$3 deadline
  pid_alive "$pid" || return 0
  kill "-$signal" "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + seconds))
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "three-replicas: pid $pid still runs ${seconds}s after SIG$signal; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
}

cmd_down() {
  local dir=$1
  load_env "$dir"
  if pid_alive "${LB_PID:-}"; then
    if [ "${LB_KIND:-nginx}" = nginx ]; then
      # SIGQUIT: nginx's graceful stop; its workers exit with the master.
      stop_pid "$LB_PID" QUIT 10
    else
      stop_pid "$LB_PID" TERM 10
    fi
    echo "three-replicas: ${LB_KIND:-nginx} stopped (pid $LB_PID)"
  fi
  set_env_value "$dir" LB_PID ""
  local n pid_var
  for n in 1 2 3; do
    pid_var="PID_$n"
    if pid_alive "${!pid_var:-}"; then
      stop_pid "${!pid_var}" TERM 20
      echo "three-replicas: replica $n stopped (pid ${!pid_var})"
    fi
    set_env_value "$dir" "PID_$n" ""
  done
}

replica_number() {
  case "$1" in
    1 | 2 | 3) echo "$1" ;;
    *) die "replica number must be 1, 2 or 3, not '$1'" ;;
  esac
}

cmd_kill() {
  local n dir=$2 pid_var
  n=$(replica_number "$1")
  load_env "$dir"
  pid_var="PID_$n"
  pid_alive "${!pid_var:-}" || die "replica $n does not run"
  stop_pid "${!pid_var}" KILL 5
  set_env_value "$dir" "PID_$n" ""
  echo "three-replicas: replica $n killed (pid ${!pid_var})"
}

cmd_stop() {
  local n dir=$2 pid_var
  n=$(replica_number "$1")
  load_env "$dir"
  pid_var="PID_$n"
  pid_alive "${!pid_var:-}" || die "replica $n does not run"
  stop_pid "${!pid_var}" TERM 20
  set_env_value "$dir" "PID_$n" ""
  echo "three-replicas: replica $n stopped (pid ${!pid_var})"
}

cmd_start() {
  local n dir=$2
  n=$(replica_number "$1")
  dir=$(cd "$dir" && pwd)
  start_replica "$dir" "$n"
  load_env "$dir"
  local url_var="REPLICA_URL_$n"
  wait_http_ok "${!url_var}/readyz" "${READY_TIMEOUT:-60}" ||
    die "replica $n not ready after ${READY_TIMEOUT:-60}s (log: $dir/replica-$n/log)"
  echo "three-replicas: replica $n ready at ${!url_var}"
}

cmd_status() {
  local dir=$1 n pid_var
  load_env "$dir"
  for n in 1 2 3; do
    pid_var="PID_$n"
    if pid_alive "${!pid_var:-}"; then
      echo "replica $n: running (pid ${!pid_var})"
    else
      echo "replica $n: not running"
    fi
  done
  if pid_alive "${LB_PID:-}"; then
    echo "${LB_KIND:-nginx}: running (pid $LB_PID)"
  else
    echo "${LB_KIND:-nginx}: not running"
  fi
}

[ $# -ge 2 ] || usage
case "$1" in
  up) [ $# -eq 2 ] || usage; cmd_up "$2" ;;
  down) [ $# -eq 2 ] || usage; cmd_down "$2" ;;
  status) [ $# -eq 2 ] || usage; cmd_status "$2" ;;
  kill) [ $# -eq 3 ] || usage; cmd_kill "$2" "$3" ;;
  stop) [ $# -eq 3 ] || usage; cmd_stop "$2" "$3" ;;
  start) [ $# -eq 3 ] || usage; cmd_start "$2" "$3" ;;
  *) usage ;;
esac
