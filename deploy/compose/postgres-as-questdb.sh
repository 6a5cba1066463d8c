#!/bin/bash
# Starts PostgreSQL 15 as a stand-in for QuestDB (compose.postgres.yaml, and the tests): the same
# PG-wire port (8812), user (admin), password (quest) and database (qdb) as QuestDB's defaults.
# Works in an image with Debian's postgresql-15 and in the official postgres:15 image. Runs as root
# and drops to the postgres user.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
base=/var/lib/kuboard-pg
data=$base/data
mkdir -p "$base" /run/postgresql
chown postgres:postgres "$base" /run/postgresql
if [ ! -f "$data/PG_VERSION" ]; then
  printf '%s\n' "${QUESTDB_PASSWORD:-quest}" >"$base/pwfile"
  chown postgres "$base/pwfile"
  su postgres -s /bin/bash -c "$bin/initdb -D $data -U ${QUESTDB_USER:-admin} --pwfile=$base/pwfile \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null"
  rm -f "$base/pwfile"
  # Clients come from the other containers: password authentication from any address.
  echo 'host all all all scram-sha-256' >>"$data/pg_hba.conf"
  echo 'CREATE DATABASE qdb;' | su postgres -s /bin/bash -c "$bin/postgres --single -D $data postgres >/dev/null"
fi
exec su postgres -s /bin/bash -c "exec $bin/postgres -D $data -p 8812 -c listen_addresses='*'"
