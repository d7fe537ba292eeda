-- cancel: stop a job that has not finished. A queued job leaves its line, a retrying one the
-- schedule; an active one stays with its worker, whose next ack or fail is then refused (fenced).
-- KEYS[1]: the job hash   KEYS[2]: the waiting list   KEYS[3]: the retry schedule
-- KEYS[4]: the finished jobs' indexes' common prefix (see `schedule_expiry`)
-- ARGV[1]: job id   ARGV[2]: now (ms)   ARGV[3]: events channel
-- ARGV[4]: the caller's subject ('' for anonymous)
-- Returns: {1, previous state} cancelled; {0, state} not cancellable (finished); {0, 'missing'}
-- (no record, or another subject's job: the two are told apart by no one)
local found = redis.call('HMGET', KEYS[1], 'state', 'subject', 'priority')
local state = found[1]
if not state or (found[2] or '') ~= ARGV[4] then return {0, 'missing'} end
if state == 'queued' then
  leave_line(KEYS[2], ARGV[1], found[3] == 'high')
elseif state == 'retrying' then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif state ~= 'active' then
  return {0, state}
end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'due_at', 'step')
schedule_expiry(KEYS[4], ARGV[1], ARGV[2], 'cancelled')
publish_current(ARGV[3], KEYS[1], ARGV[1], ARGV[2])
count(KEYS[1], 'cancelled')
return {1, state}
