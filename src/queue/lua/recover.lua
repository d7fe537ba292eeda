-- recover: return a job from a processing list nobody is working on to the front of its line.
-- Used by the reaper for workers of dead instances (their heartbeat expired), and by a live worker for
-- ids in its own list it does not hold (a BLMOVE or activate whose reply was lost).
-- A job that was active counts a stall when its instance died; past the limit it fails as a poison
-- pill. One its own live worker finds (ARGV[6] not '1') is handed back without a stall.
-- KEYS[1]: the instance's heartbeat   KEYS[2]: the processing list   KEYS[3]: the waiting list
-- KEYS[4]: the job hash   KEYS[5]: the set of known workers
-- KEYS[6]: the finished jobs' indexes' common prefix (see `schedule_expiry`)
-- ARGV[1]: job id   ARGV[2]: the list's worker name   ARGV[3]: now (ms)   ARGV[4]: max stalls
-- ARGV[5]: events channel   ARGV[6]: '1' only if the instance is dead
-- Returns: 'alive' (heartbeat present: nothing done), 'gone' (not in the list any more),
--          'requeued', 'failed' (stalled too often), 'dropped' (finished or missing: just removed)
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 'alive' end
if redis.call('LREM', KEYS[2], '1', ARGV[1]) == 0 then return 'gone' end
local result = 'dropped'
local f = redis.call('HMGET', KEYS[4], 'state', 'owner', 'priority')
local high = f[3] == 'high'
if ARGV[1] == HIGH then
  -- A marker claimed by BLMOVE but never resolved: it goes back, for the job it stands for.
  redis.call('RPUSH', KEYS[3], HIGH)
  result = 'requeued'
elseif f[1] == 'queued' then
  -- Claimed by BLMOVE but never activated: no attempt was made, nothing to count.
  line_up(KEYS[3], ARGV[1], high, true)
  result = 'requeued'
elseif f[1] == 'active' and f[2] == ARGV[2] and ARGV[6] ~= '1' then
  -- Its own live worker found it: an activation whose reply was lost, or a run whose outcome
  -- could not be recorded. Nobody died: handed back like a shutdown's job, the attempt returned.
  redis.call('HINCRBY', KEYS[4], 'attempts', '-1')
  redis.call('HSET', KEYS[4], 'state', 'queued', 'progress', '0', 'updated_at', ARGV[3])
  redis.call('HDEL', KEYS[4], 'step')
  line_up(KEYS[3], ARGV[1], high, true)
  result = 'requeued'
  publish_current(ARGV[5], KEYS[4], ARGV[1], ARGV[3])
elseif f[1] == 'active' and f[2] == ARGV[2] then
  local stalls = redis.call('HINCRBY', KEYS[4], 'stalls', '1')
  if stalls > tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[4], 'state', 'failed', 'error_code', 'stalled',
      'error_detail', 'the worker running this job died ' .. stalls .. ' times; not retrying',
      'finished_at', ARGV[3], 'updated_at', ARGV[3])
    schedule_expiry(KEYS[6], ARGV[1], ARGV[3], 'failed')
    count(KEYS[4], 'failed', 'stalled')
    result = 'failed'
  else
    redis.call('HSET', KEYS[4], 'state', 'queued', 'progress', '0', 'updated_at', ARGV[3])
    redis.call('HDEL', KEYS[4], 'step')
    line_up(KEYS[3], ARGV[1], high, true)
    result = 'requeued'
  end
  publish_current(ARGV[5], KEYS[4], ARGV[1], ARGV[3])
end
if ARGV[6] == '1' and redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[2])
end
return result
