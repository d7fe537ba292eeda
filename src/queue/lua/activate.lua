-- activate: a worker just moved the id into its processing list with BLMOVE (see `activate_job`).
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list
-- ARGV[1]: job id   ARGV[2]: worker name (owner)   ARGV[3]: now (ms)   ARGV[4]: events channel
-- ARGV[5]: job starts allowed per window (0: no limit)   ARGV[6]: the window (ms)
-- Returns: what `activate_job` does
return activate_job(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
