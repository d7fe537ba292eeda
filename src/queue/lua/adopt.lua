-- adopt: give a record an earlier version wrote (without a content reference) its reference, and
-- if it has a TTL, replace it with a place in its state's index of finished jobs, as if it
-- finished now, so it is removed with its references like any record written now.
-- KEYS[1]: the job hash   KEYS[2]: the content's references
-- KEYS[3]: the finished jobs' indexes' common prefix (see `schedule_expiry`)
-- ARGV[1]: job id   ARGV[2]: the content   ARGV[3]: now (ms)
-- Returns: 1 adopted; 0 nothing to do (no record, or it has its reference)
local f = redis.call('HMGET', KEYS[1], 'state', 'content')
if not f[1] or f[2] then return 0 end
redis.call('HSET', KEYS[1], 'content', ARGV[2])
redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PERSIST', KEYS[1])
  schedule_expiry(KEYS[3], ARGV[1], ARGV[3], f[1])
end
return 1
