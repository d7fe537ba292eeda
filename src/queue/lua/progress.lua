-- progress: record how far an active job is and tell the watchers.
-- KEYS[1]: the job hash
-- ARGV[1]: job id   ARGV[2]: owner   ARGV[3]: lease   ARGV[4]: now (ms)   ARGV[5]: percent (0-100)
-- ARGV[6]: step name   ARGV[7]: events channel
-- Returns: 1 recorded; 0 the lease is lost (cancelled or reaped): nothing changed
local job, status = lease_status(KEYS[1], ARGV[2], ARGV[3], '')
if status ~= 'held' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[5], 'step', ARGV[6], 'updated_at', ARGV[4],
  'version', next_version(job))
job.progress = ARGV[5]
job.step = ARGV[6]
publish_event(ARGV[7], ARGV[1], job, ARGV[4])
return 1
