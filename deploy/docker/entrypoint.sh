#!/bin/sh
# Entrypoint of the kuboard image: kuboard itself never runs as root.
#
# Started as root (the image's default, so that Kuboard's guide line with
# `-v /root/kuboard-data:/data` works: Docker creates that host folder owned by root), it gives the
# data folder to the kuboard user (uid 10001) when it is not already its, then drops to that user with
# no capabilities and no way back (setpriv, no_new_privs). Started as any other user (Kubernetes
# runAsUser, `docker run --user`), it runs kuboard as that user unchanged.
set -eu
if [ "$(id -u)" = 0 ]; then
  data=${KUBOARD_DATA_DIR:-/data}
  mkdir -p "$data"
  if [ "$(stat -c %u "$data")" != 10001 ]; then
    chown -R 10001:10001 "$data"
    chmod 0750 "$data"
  fi
  exec setpriv --reuid=10001 --regid=10001 --clear-groups --no-new-privs \
    /usr/local/bin/kuboard "$@"
fi
exec /usr/local/bin/kuboard "$@"
