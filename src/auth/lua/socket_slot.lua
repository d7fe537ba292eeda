-- socket_slot: take, renew or give back one of a subject's places for open sockets. Each place is
-- a member of a sorted set scored by when it lapses, so the places of a process that died without
-- giving them back free themselves.
-- KEYS[1]: the subject's sockets (sorted set)
-- ARGV[1]: 'take' | 'renew' | 'give'   ARGV[2]: the socket's id   ARGV[3]: now (ms)
-- ARGV[4]: lapses at (ms)   ARGV[5]: limit (take only)
-- Returns: 1 done; 0 refused (take: the subject holds its limit; renew: the place had lapsed)
if ARGV[1] == 'give' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if ARGV[1] == 'renew' then
  if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
elseif redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) - tonumber(ARGV[3]))
return 1
