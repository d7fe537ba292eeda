-- hand_back: a stopping worker returns a job it could not finish to the front of its line at
-- once, rather than leaving it for the reaper. The attempt it started is not counted.
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list   KEYS[3]: the waiting list
-- ARGV[1]: job id   ARGV[2]: owner   ARGV[3]: lease   ARGV[4]: now (ms)   ARGV[5]: events channel
-- Returns: {1} handed back; {0, state} not owned: nothing changed
local job, status = lease_status(KEYS[1], ARGV[2], ARGV[3], 'queued')
-- A repeat ('done') finds the id gone from the list already, so `release` pushes nothing twice.
release(KEYS[2], KEYS[3], ARGV[1], job)
if status == 'done' then return {1} end
if status ~= 'held' then return {0, status} end
clear(KEYS[1], job, 'step')
job.state, job.attempts, job.progress, job.step = 'queued',
  string.format('%d', tonumber(job.attempts) - 1), '0', nil
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', job.attempts, 'progress', '0',
  'updated_at', ARGV[4], 'version', next_version(job))
line_up(KEYS[3], ARGV[1], job.high, true)
publish_event(ARGV[5], ARGV[1], job, ARGV[4])
return {1}
