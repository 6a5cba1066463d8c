#!/usr/bin/env bash
# Builds, without any image registry, the base images that deploy/docker/Dockerfile and the compose
# files name, from Debian packages, and tags them with those names:
#
#   debian:bookworm-slim         a debootstrap minbase rootfs (the runtime stage's base)
#   kuboard-tools:bookworm-2     minbase plus nginx-light (and its stream module, for the HTTPS
#                                pass-through), etcd-server, etcd-client, postgresql-15,
#                                also tagged as the load balancer and QuestDB stand-in images that
#                                deploy/compose uses (see deploy/compose/README.md)
#   kuboard-etcd:3.4             the same rootfs run as deploy/compose/etcd/Dockerfile says
#
#   deploy/docker/build-base-images.sh CACHE_DIR
#
# The rootfs tarballs are cached in CACHE_DIR (e.g. target/deploy-cache) and reused; the docker
# client talks to DOCKER_HOST. Needs root (debootstrap, chroot) and Debian's debootstrap.
# On a machine with a registry none of this is needed: `docker pull` the official images instead.
set -euo pipefail

cache=${1:?usage: $0 CACHE_DIR}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# rootfs_tarball NAME INCLUDE: builds $cache/NAME.tar once (debootstrap, then apt lists and caches
# removed), rebuilt only when missing.
rootfs_tarball() {
  local name=$1 include=$2 root
  if [ -s "$cache/$name.tar" ]; then
    return 0
  fi
  root=$(mktemp -d "$cache/$name.rootfs.XXXXXX")
  echo "build-base-images: debootstrap $name (${include:-minbase only})"
  debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$root" "$mirror" \
    >"$cache/$name.debootstrap.log" 2>&1 || {
    echo "build-base-images: debootstrap failed, see $cache/$name.debootstrap.log" >&2
    rm -rf "$root"
    return 1
  }
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -cf "$cache/$name.tar.tmp" .
  mv "$cache/$name.tar.tmp" "$cache/$name.tar"
  rm -rf "$root"
}

# import_as TARBALL TAG...: imports once, then tags.
import_as() {
  local tarball=$1 first=$2
  shift 2
  if ! "$docker" image inspect "$first" >/dev/null 2>&1; then
    "$docker" import --change 'CMD ["bash"]' "$tarball" "$first" >/dev/null
  fi
  local tag
  for tag in "$@"; do
    "$docker" tag "$first" "$tag"
  done
}

rootfs_tarball debian-bookworm-minbase "" &
minbase_pid=$!
# The name carries a number raised with every change of the package list, so that a cached rootfs
# or image of an older list is not reused.
rootfs_tarball debian-bookworm-tools-2 "nginx-light,libnginx-mod-stream,etcd-server,etcd-client,postgresql-15,procps" &
tools_pid=$!
status=0
wait "$minbase_pid" || status=1
wait "$tools_pid" || status=1
[ "$status" -eq 0 ] || exit 1

import_as "$cache/debian-bookworm-minbase.tar" debian:bookworm-slim
import_as "$cache/debian-bookworm-tools-2.tar" kuboard-tools:bookworm-2 \
  "${KUBOARD_NGINX_IMAGE:-nginx:1.27-bookworm}" \
  "${QUESTDB_STANDIN_IMAGE:-kuboard-pg-questdb:15}"
# The etcd image as deploy/compose/etcd/Dockerfile describes it (its apt-get step needs a mirror
# reachable from containers): the same rootfs with the Dockerfile's user and entrypoint.
etcd_image=${KUBOARD_ETCD_IMAGE:-kuboard-etcd:3.4}
if ! "$docker" image inspect "$etcd_image" >/dev/null 2>&1; then
  "$docker" import --change 'USER etcd' --change 'ENTRYPOINT ["/usr/bin/etcd"]' \
    --change 'EXPOSE 2379/tcp' --change 'EXPOSE 2380/tcp' --change 'VOLUME ["/var/lib/etcd"]' \
    "$cache/debian-bookworm-tools-2.tar" "$etcd_image" >/dev/null
fi
echo "build-base-images: images ready"
