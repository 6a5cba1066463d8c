#!/usr/bin/env bash
# Installs what building and testing kuboard needs on a fresh Debian machine, and nothing that is
# already there. Safe to run any number of times.
#
#   scripts/install-deps.sh build   # what `cargo build` needs (protoc for the etcd API)
#   scripts/install-deps.sh test    # the above plus the real peers the tests start (etcd 3.4, ...)
set -euo pipefail

what=${1:-test}
case "$what" in
  build|test) ;;
  *) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

# Each entry: a command that must exist, and the Debian package that provides it.
needed=(
  "protoc protobuf-compiler"
  # protoc's well-known types (google/protobuf/descriptor.proto, ...) that etcd-client's protos
  # import; only a Recommends of protobuf-compiler, so --no-install-recommends leaves them out.
  "/usr/include/google/protobuf/descriptor.proto libprotobuf-dev"
  "cc gcc"
  "pkg-config pkg-config"
)
if [ "$what" = test ]; then
  needed+=(
    "etcd etcd-server"
    "etcdctl etcd-client"
    # The machine image ships kubectl 1.32; Debian 12 itself only has kubernetes-client (1.20).
    "kubectl kubernetes-client"
    "ip iproute2"
    "iptables iptables"
    "curl curl"
    # tests/t82_generated_secret_durability.rs watches a replica's renames and fsyncs.
    "strace strace"
    # tests/t70_audit_*.rs start PostgreSQL 15 as the PG-wire stand-in for QuestDB.
    "/usr/lib/postgresql/15/bin/postgres postgresql"
    # scripts/schemathesis.sh makes a venv for schemathesis from PyPI.
    "python3 python3-venv"
    # scripts/test-deploy.sh: the load balancers, the container engine (Debian's own client: a
    # /usr/local/bin/docker may be a newer client alone), compose, debootstrap for the base images,
    # unzip and npm for helm and dclint (npm). systemd-analyze verifies the unit where it exists.
    "nginx nginx"
    # deploy/lb/nginx.conf passes the HTTPS port through with nginx's stream module.
    "/usr/lib/nginx/modules/ngx_stream_module.so libnginx-mod-stream"
    "haproxy haproxy"
    "/usr/sbin/dockerd docker.io"
    "/usr/bin/docker docker.io"
    "docker-compose docker-compose"
    "debootstrap debootstrap"
    "unzip unzip"
    "npm npm"
    # scripts/test-console.sh: the console's end-to-end suite drives Debian's Chromium (playwright-core,
    # no browser download) against three replicas behind nginx. Node 20 and npm, which build the
    # console, come with the machine: Debian 12's nodejs (18) is too old for the console's Vite.
    "chromium chromium"
    # A CJK font, so that the Chinese console renders (and its screenshots show) characters, not boxes.
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc fonts-wqy-microhei"
  )
fi

missing=()
for entry in "${needed[@]}"; do
  command=${entry%% *}
  package=${entry#* }
  case "$command" in
    /*) present() { [ -e "$1" ]; } ;;
    *) present() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; } ;;
  esac
  if ! present "$command"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: everything for '$what' is present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
  else
    echo "install-deps: missing packages ${missing[*]}; run this script as root" >&2
    exit 1
  fi
else
  SUDO=
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# etcd-server starts a system etcd on 127.0.0.1:2379 after installation on machines with an init
# system; the tests never use that port, they start their own members on free ports.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
