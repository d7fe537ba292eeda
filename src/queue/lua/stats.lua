-- stats: the whole queue at one moment, for `/metrics` and the admin API (reads only).
-- KEYS[1]: the waiting list   KEYS[2]: the retry schedule   KEYS[3]: the set of known workers
-- KEYS[4]: the statistics hash (see `count`)   KEYS[5..7]: the indexes of completed, failed and
-- cancelled jobs (see `schedule_expiry`)   KEYS[8]: the pause flag
-- ARGV[1]: the `{prefix}` tag
-- Returns {waiting, retrying, active, workers, completed, failed, cancelled, paused (0 or 1),
-- waiting with high priority, field, value, field, value...}: active is the ids in the workers' processing lists; completed,
-- failed and cancelled the finished records kept; the pairs are the statistics hash's counters.
local active = 0
local workers = redis.call('SMEMBERS', KEYS[3])
for _, worker in ipairs(workers) do
  active = active + redis.call('LLEN', ARGV[1] .. ':processing:' .. worker)
end
local answer = {redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), active, #workers,
  redis.call('ZCARD', KEYS[5]), redis.call('ZCARD', KEYS[6]), redis.call('ZCARD', KEYS[7]),
  redis.call('EXISTS', KEYS[8]), redis.call('LLEN', KEYS[1] .. ':high')}
for _, v in ipairs(redis.call('HGETALL', KEYS[4])) do answer[#answer + 1] = v end
return answer
