-- charge: take amounts from several allowances at once, all or nothing: a request that would pass
-- any one limit takes from none. Counters are checked in the order given.
-- KEYS[i]: a counter
-- ARGV[3i-2]: amount (negative gives back; 0 only asks)   ARGV[3i-1]: limit
-- ARGV[3i]: the counter's lifetime (ms) once created; 0 for none
-- Returns: {0} charged; {i, used, ms until counter i expires (-1: never, -2: no counter)} refused
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[3 * i - 2]) > tonumber(ARGV[3 * i - 1]) then
    return {i, used, redis.call('PTTL', KEYS[i])}
  end
end
for i = 1, #KEYS do
  local amount = tonumber(ARGV[3 * i - 2])
  if amount ~= 0 then
    local after = redis.call('INCRBY', KEYS[i], amount)
    if after == amount and tonumber(ARGV[3 * i]) > 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
    end
  end
end
return {0}
