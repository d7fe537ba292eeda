-- charge: take `amount` from an allowance, unless that would pass its limit; all or nothing.
-- KEYS[1]: the counter
-- ARGV[1]: amount   ARGV[2]: limit   ARGV[3]: the counter's lifetime (ms) once created; 0 for none
-- Returns: {1, used after} charged; {0, used, ms until the counter expires (-1: never)} refused
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if used + amount > limit then
  return {0, used, redis.call('PTTL', KEYS[1])}
end
local after = redis.call('INCRBY', KEYS[1], amount)
if after == amount and tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, after}
