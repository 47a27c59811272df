#!/bin/sh
# Lets a standby (compose.yaml's profile ha) stream the write-ahead log: a
# replication connection from another container, with the password. The
# postgres image runs this once, when it initialises an empty data volume;
# for an older volume, append the line by hand and reload:
#   docker compose exec postgres sh -c 'echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"'
#   docker compose exec postgres psql -U minizon -d postgres -c 'SELECT pg_reload_conf()'
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
