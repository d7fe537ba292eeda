-- fail: the job is dead (a permanent error, or out of attempts); keep the reason, expire the record.
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list   KEYS[3]: the waiting list
-- KEYS[4]: the finished jobs' indexes' common prefix (see `schedule_expiry`)
-- ARGV[1]: job id   ARGV[2]: owner   ARGV[3]: lease   ARGV[4]: now (ms)   ARGV[5]: error code
-- ARGV[6]: error detail   ARGV[7]: events channel
-- Returns: {1} failed (or already, by this lease); {0, state} not owned: nothing changed
local job, status = lease_status(KEYS[1], ARGV[2], ARGV[3], 'failed')
release(KEYS[2], KEYS[3], ARGV[1], job)
if status == 'done' then return {1} end
if status ~= 'held' then return {0, status} end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error_code', ARGV[5], 'error_detail', ARGV[6],
  'finished_at', ARGV[4], 'updated_at', ARGV[4], 'version', next_version(job))
schedule_expiry(KEYS[4], ARGV[1], ARGV[4], 'failed')
job.state, job.error_code, job.error_detail = 'failed', ARGV[5], ARGV[6]
publish_event(ARGV[7], ARGV[1], job, ARGV[4])
count(KEYS[1], 'failed', ARGV[5])
return {1}
