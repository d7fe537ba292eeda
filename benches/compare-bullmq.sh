#!/usr/bin/env bash
# pixdrop's queue beside BullMQ's, on one redis-server in one run: no-op jobs per second at
# concurrency 1, 8 and 64. BullMQ comes from ../shared/peers/node-seed (copied to a temp dir and
# `npm install`ed there, its noop-bench.js: enqueue with addBulk, then drain); pixdrop from
# `cargo bench --bench queue` (enqueue alone, drain alone, and end to end with the enqueue running
# while the workers drain). Prints each figure and the ratios:
#   drain          jobs/s draining jobs enqueued beforehand
#   serial         enqueue then drain, the same jobs: 1 / (1/enqueue + 1/drain), for both queues
#   overlapped     pixdrop's end to end, enqueue and drain at once, against BullMQ's serial
#   benches/compare-bullmq.sh            # JOBS=5000 for BullMQ by default: pixdrop's bench drains
#                                        # 5,000 a sample, so both pay their start-up on as many
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${NODE_SEED:-../shared/peers/node-seed}
jobs=${JOBS:-5000}
work=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cp -r "$peer/." "$work/seed"
(cd "$work/seed" && npm install --no-audit --no-fund --silent >/dev/null)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# AOF on, fsync every second, no eviction: Redis's usual durable setting, the same for both queues.
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --appendonly yes --appendfsync everysec \
  --save "" --maxmemory-policy noeviction --daemonize yes --logfile "$work/redis.log"
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

for c in 1 8 64; do
  (cd "$work/seed" && REDIS_PORT=$port JOBS=$jobs CONCURRENCY=$c node noop-bench.js) | tee -a "$work/bullmq.jsonl"
  redis-cli -p "$port" flushall >/dev/null
done
PIXDROP_BENCH_REDIS_URL="redis://127.0.0.1:$port" cargo bench --bench queue -- --noplot 2>&1 |
  grep -E "^queue_|thrpt:  \[[0-9]" | tee "$work/pixdrop.txt"

python3 - "$work/bullmq.jsonl" "$work/pixdrop.txt" <<'PY'
import json, re, sys

bull = {r["concurrency"]: r for r in map(json.loads, open(sys.argv[1]))}
pix, name = {}, None
for line in open(sys.argv[2]):
    m = re.match(r"^(queue_\w+/\w+)", line)
    if m:
        name = m.group(1)
    m = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\w?)elem/s", line)
    if m and name:
        pix[name] = float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6}[m.group(2)]
        name = None

serial = lambda enqueue, drain: 1 / (1 / enqueue + 1 / drain)
p_enq = pix["queue_enqueue/batches_of_500"]
print(f"\nenqueue (batches of 500): BullMQ {round(min(r['enqueue_per_s'] for r in bull.values())):,} to "
      f"{round(max(r['enqueue_per_s'] for r in bull.values())):,}/s, pixdrop {round(p_enq):,}/s\n")
print("| concurrency | BullMQ drain | pixdrop drain | ratio | BullMQ serial | pixdrop serial | ratio | pixdrop overlapped | ratio |")
print("|---|---|---|---|---|---|---|---|---|")
for c in (1, 8, 64):
    b = bull[c]
    b_serial = serial(b["enqueue_per_s"], b["process_per_s"])
    p_drain = pix[f"queue_drain/{c}"]
    p_serial = serial(p_enq, p_drain)
    p_over = pix[f"queue_noop/{c}"]
    print(f"| {c} | {b['process_per_s']:,} | {round(p_drain):,} | {p_drain / b['process_per_s']:.2f}x "
          f"| {round(b_serial):,} | {round(p_serial):,} | {p_serial / b_serial:.2f}x "
          f"| {round(p_over):,} | {p_over / b_serial:.2f}x |")
PY
