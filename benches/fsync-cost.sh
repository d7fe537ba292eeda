#!/usr/bin/env bash
# What fsyncing every write costs the queue: `cargo bench --bench queue` twice in one run, on a
# private redis-server with the AOF fsynced every second (an external Redis's usual setting) and
# then on every write (`appendfsync always`, the embedded server's). Prints no-op jobs per second at concurrency 1, 8 and 64 for each.
set -euo pipefail
cd "$(dirname "$0")/.."
for fsync in everysec always; do
  echo "appendfsync $fsync"
  PIXDROP_BENCH_APPENDFSYNC=$fsync cargo bench --bench queue -- --noplot 2>&1 |
    grep -E "^queue_(noop|drain)|thrpt:  \[[0-9]"
done
