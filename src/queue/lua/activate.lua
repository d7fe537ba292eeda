-- activate: a worker just moved the id into its processing list with BLMOVE (see `activate_job`).
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list
-- ARGV[1]: job id   ARGV[2]: worker name (owner)   ARGV[3]: now (ms)   ARGV[4]: events channel
-- ARGV[5]: job starts allowed per window (0: no limit)   ARGV[6]: the window (ms)
-- ARGV[7]: high-priority starts before a waiting bulk job's turn   ARGV[8]: the `{prefix}` tag
-- For a claimed marker (ARGV[1] 'high'), KEYS[1] is a key that holds nothing: the job it stands
-- for is found when the marker is resolved.
-- Returns: what `activate_job` does
return activate_job(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6],
  ARGV[7], false, ARGV[8])
