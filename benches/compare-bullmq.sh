#!/usr/bin/env bash
# pixdrop's queue beside BullMQ's, on one redis-server in one run: no-op jobs per second at
# concurrency 1, 8 and 64. BullMQ comes from ../shared/peers/node-seed (copied to a temp dir and
# `npm install`ed there); pixdrop from `cargo bench --bench queue`.
#   benches/compare-bullmq.sh            # JOBS=10000 by default for BullMQ
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${NODE_SEED:-../shared/peers/node-seed}
jobs=${JOBS:-10000}
work=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cp -r "$peer/." "$work/seed"
(cd "$work/seed" && npm install --no-audit --no-fund --silent >/dev/null)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# AOF on, fsync every second, no eviction: Redis's usual durable setting, the same for both queues.
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --appendonly yes --appendfsync everysec \
  --save "" --maxmemory-policy noeviction --daemonize yes --logfile "$work/redis.log"
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

echo "BullMQ (process_per_s: draining jobs enqueued beforehand)"
for c in 1 8 64; do
  (cd "$work/seed" && REDIS_PORT=$port JOBS=$jobs CONCURRENCY=$c node noop-bench.js)
  redis-cli -p "$port" flushall >/dev/null
done
echo "pixdrop (end to end: enqueue while draining)"
PIXDROP_BENCH_REDIS_URL="redis://127.0.0.1:$port" cargo bench --bench queue -- --noplot 2>&1 |
  grep -E "^queue_(noop|drain)|thrpt:  \[[0-9]"
