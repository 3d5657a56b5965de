#!/bin/sh
# Container entrypoint: picks the id generator's SHARD, then execs the
# program named by the command (broker, identity, ..., gateway), which
# becomes PID 1 and receives SIGTERM itself.
#
# SHARD: services with a database lease their id shard from Postgres at
# start when SHARD is auto (the default; common/service.c holds a session
# advisory lock per shard and service), so replicas made by `--scale` or a
# Deployment never share one. The image leaves SHARD=auto alone; a number
# (0..8191) is used as given (docs/operations.md, "Ids and SHARD").
set -eu

if [ $# -eq 0 ]; then
    set -- gateway
fi
exec "$@"
