-- ack: the job finished; record its result, schedule the record's expiry, and (when the worker
-- asks) move the next waiting id into the worker's processing list, so a busy worker claims its
-- next job in the same round trip instead of a separate BLMOVE.
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list   KEYS[3]: the waiting list
-- KEYS[4]: the expiry schedule of finished jobs
-- ARGV[1]: job id   ARGV[2]: owner   ARGV[3]: lease   ARGV[4]: now (ms)   ARGV[5]: result (JSON)
-- ARGV[6]: retention (ms)   ARGV[7]: events channel   ARGV[8]: '1' to claim the next id
-- Returns: {1, next id or ''} completed (or already completed by this very lease);
--          {0, state, next id or ''} not owned: the lease was lost, the record is unchanged
local job, status = lease_status(KEYS[1], ARGV[2], ARGV[3], 'completed')
release(KEYS[2], KEYS[3], ARGV[1], job.state)
local answer
if status == 'held' then
  redis.call('HSET', KEYS[1], 'state', 'completed', 'result', ARGV[5], 'progress', 100,
    'finished_at', ARGV[4], 'updated_at', ARGV[4], 'version', next_version(job))
  clear(KEYS[1], job, 'error_code', 'error_detail', 'step')
  schedule_expiry(KEYS[4], ARGV[1], ARGV[4], ARGV[6])
  job.state, job.progress, job.step, job.error_code = 'completed', 100, nil, nil
  publish_event(ARGV[7], ARGV[1], job, ARGV[4], ARGV[5])
  answer = {1}
elseif status == 'done' then
  answer = {1}
else
  answer = {0, status}
end
local next_id = ''
if ARGV[8] == '1' then
  next_id = redis.call('LMOVE', KEYS[3], KEYS[2], 'RIGHT', 'LEFT') or ''
end
if answer[1] == 1 then answer[2] = next_id else answer[3] = next_id end
return answer
