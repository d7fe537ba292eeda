-- activate: a worker just moved the id into its processing list with BLMOVE; mark the job active,
-- count the attempt and hand out a new lease (the fencing token for every later call).
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list
-- ARGV[1]: job id   ARGV[2]: worker name (owner)   ARGV[3]: now (ms)   ARGV[4]: events channel
-- Returns: {'active', lease, attempts, max_attempts, payload}
--          {'skip', state} the job is not runnable (cancelled meanwhile, or its record expired):
--          the id is dropped from the processing list
local f = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease', 'attempts', 'max_attempts', 'payload')
if f[1] == 'active' and f[2] == ARGV[2] then
  -- A repeat of our own activation whose reply was lost: same lease, nothing counted twice.
  return {'active', f[3], f[4], f[5], f[6]}
end
if f[1] ~= 'queued' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  return {'skip', f[1] or 'missing'}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local lease = redis.call('HINCRBY', KEYS[1], 'lease', 1)
redis.call('HSET', KEYS[1], 'state', 'active', 'owner', ARGV[2], 'started_at', ARGV[3],
  'updated_at', ARGV[3], 'progress', 0)
redis.call('HDEL', KEYS[1], 'step', 'due_at')
publish_event(ARGV[4], KEYS[1], ARGV[1])
return {'active', tostring(lease), tostring(attempts), f[5], f[6]}
