-- ack: the job finished; record its result, schedule the record's expiry, and (when the worker
-- asks) move the next waiting id into the worker's processing list and activate it, so a busy
-- worker settles one job and starts the next in one round trip instead of three (ack, BLMOVE,
-- activate).
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list   KEYS[3]: the waiting list
-- KEYS[4]: the finished jobs' indexes' common prefix (see `schedule_expiry`)
-- ARGV[1]: job id   ARGV[2]: owner   ARGV[3]: lease   ARGV[4]: now (ms)   ARGV[5]: result (JSON)
-- ARGV[6]: events channel   ARGV[7]: '1' to claim the next id
-- ARGV[8]: the `{prefix}` tag (the next job's key is built from it, in the same slot)
-- ARGV[9], ARGV[10]: the rate limit's job starts per window and window (ms), as `activate_job`
-- ARGV[11]: high-priority starts before a waiting bulk job's turn, as `activate_job`
-- Returns {settled, state, next...}: settled '1' completed (or already completed by this very
-- lease; state ''), '0' not owned: the lease was lost, the record is unchanged (state: the job's).
-- next: nothing, or the next id (or marker) followed by `activate_job`'s answer for it.
local job, status = lease_status(KEYS[1], ARGV[2], ARGV[3], 'completed')
release(KEYS[2], KEYS[3], ARGV[1], job)
local answer
if status == 'held' then
  redis.call('HSET', KEYS[1], 'state', 'completed', 'result', ARGV[5], 'progress', '100',
    'finished_at', ARGV[4], 'updated_at', ARGV[4], 'version', next_version(job))
  clear(KEYS[1], job, 'error_code', 'error_detail', 'step')
  schedule_expiry(KEYS[4], ARGV[1], ARGV[4], 'completed')
  job.state, job.progress, job.step, job.error_code = 'completed', '100', nil, nil
  publish_event(ARGV[6], ARGV[1], job, ARGV[4], ARGV[5])
  count(KEYS[1], 'completed', nil, ARGV[8])
  answer = {'1', ''}
elseif status == 'done' then
  answer = {'1', ''}
else
  answer = {'0', status}
end
if ARGV[7] == '1' and not paused(ARGV[8]) then
  local next_id = redis.call('LMOVE', KEYS[3], KEYS[2], 'RIGHT', 'LEFT')
  if next_id then
    answer[3] = next_id
    local next_job = activate_job(ARGV[8] .. ':job:' .. next_id, KEYS[2], next_id, ARGV[2],
      ARGV[4], ARGV[6], ARGV[9], ARGV[10], ARGV[11], true, ARGV[8])
    for _, v in ipairs(next_job) do answer[#answer + 1] = v end
  end
end
return answer
