-- retry: the attempt failed with a transient error and attempts remain; wait out the backoff.
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list   KEYS[3]: the waiting list
-- KEYS[4]: the retry schedule (zset)
-- ARGV[1]: job id   ARGV[2]: owner   ARGV[3]: lease   ARGV[4]: now (ms)   ARGV[5]: due time (ms)
-- ARGV[6]: error code   ARGV[7]: error detail   ARGV[8]: events channel
-- Returns: {1} scheduled (or already, by this lease); {0, state} not owned: nothing changed
local job, status = lease_status(KEYS[1], ARGV[2], ARGV[3], 'retrying')
release(KEYS[2], KEYS[3], ARGV[1], job)
if status == 'done' then return {1} end
if status ~= 'held' then return {0, status} end
redis.call('HSET', KEYS[1], 'state', 'retrying', 'due_at', ARGV[5], 'error_code', ARGV[6],
  'error_detail', ARGV[7], 'updated_at', ARGV[4], 'version', next_version(job))
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
job.state, job.error_code, job.error_detail = 'retrying', ARGV[6], ARGV[7]
publish_event(ARGV[8], ARGV[1], job, ARGV[4], nil, ARGV[5])
count(KEYS[1], 'retried', ARGV[6])
return {1}
