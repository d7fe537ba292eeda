-- resubmit: put a failed or cancelled job back in the queue with a fresh set of attempts. Its
-- stall count stays: a job that kept killing its workers fails at its next stall, so retrying by
-- hand cannot loop a poison pill through the workers forever.
-- KEYS[1]: the job hash   KEYS[2]: the waiting list
-- KEYS[3]: the finished jobs' indexes' common prefix, also earlier versions' expiry schedule
-- ARGV[1]: job id   ARGV[2]: now (ms)   ARGV[3]: events channel
-- ARGV[4]: the caller's subject ('' for anonymous)   ARGV[5]: '1' for an administrator (any job)
-- Returns: {1} queued again; {0, state} not failed or cancelled; {0, 'missing'} (no record, or
-- another subject's job)
local found = redis.call('HMGET', KEYS[1], 'state', 'subject', 'priority')
local state = found[1]
if not state or (ARGV[5] ~= '1' and (found[2] or '') ~= ARGV[4]) then return {0, 'missing'} end
if state ~= 'failed' and state ~= 'cancelled' then return {0, state} end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[3] .. ':' .. state, ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', '0', 'progress', '0',
  'updated_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'error_code', 'error_detail', 'finished_at', 'step', 'result', 'due_at')
line_up(KEYS[2], ARGV[1], found[3] == 'high', false)
publish_current(ARGV[3], KEYS[1], ARGV[1], ARGV[2])
return {1}
