#!/usr/bin/env bash
# Redis's CPU time per no-op job through pixdrop's queue: what bounds throughput at high
# concurrency, where the one Redis thread is the ceiling. Runs `cargo bench --bench queue`'s end to
# end group at one concurrency against a redis-server of its own, and divides the server's CPU
# time (INFO cpu, main process) and its scripts' time (INFO commandstats) by the jobs completed.
# Unlike jobs per second, these figures barely move with the machine's other load.
#   benches/redis-cost.sh [concurrency]     # 64 by default
set -euo pipefail
cd "$(dirname "$0")/.."
concurrency=${1:-64}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --appendonly yes --appendfsync everysec \
  --save "" --auto-aof-rewrite-percentage 0 --daemonize yes --logfile "$work/redis.log"
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

cpu() { redis-cli -p "$port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'; }
completed() {
  local total=0 key
  for key in $(redis-cli -p "$port" --scan --pattern '{*}:stats'); do
    total=$((total + $(redis-cli -p "$port" hget "$key" completed)))
  done
  echo "$total"
}
scripts_usec() {
  redis-cli -p "$port" info commandstats | tr -d '\r' |
    awk -F'[=,:]' '/^cmdstat_(evalsha|fcall):/ {s += $5} END {print s + 0}'
}

before_cpu=$(cpu)
PIXDROP_BENCH_REDIS_URL="redis://127.0.0.1:$port" cargo bench --bench queue -- --noplot \
  "queue_noop/$concurrency\$" 2>&1 | grep -E "thrpt:  \[[0-9]"
after_cpu=$(cpu)
jobs=$(completed)
python3 -c "
cpu, scripts, jobs = ($after_cpu - $before_cpu) * 1e6, $(scripts_usec), $jobs
print(f'{jobs:,} jobs at concurrency $concurrency: Redis CPU {cpu / jobs:.1f} µs a job, '
      f'of which inside scripts {scripts / jobs:.1f} µs')"
