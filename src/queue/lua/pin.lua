-- pin: hold contents an upload is about to store, before it moves a byte into place, so that a
-- sweep finding them unreferenced meanwhile puts them back instead of removing them (see
-- `cleanup.rs`). The pin lapses by itself if the upload dies before its enqueue, which replaces it
-- with the jobs' own references; a key holding nothing but pins lapses with them. A blocked
-- content pins nothing.
-- KEYS[1]: the blocked contents   KEYS[2..]: each content's references
-- ARGV[1]: the pin   ARGV[2]: when it lapses (ms)   ARGV[3]: now (ms)
-- ARGV[4..]: the contents, in KEYS' order
-- Returns: 0 pinned; i when the i-th content is blocked (nothing pinned)
for i = 2, #KEYS do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i + 2]) == 1 then return i - 1 end
end
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
  if redis.call('ZCOUNT', KEYS[i], '+inf', '+inf') == 0 then
    -- Only pins: the key lives as long as the last of them (a duration: the times the scripts
    -- are given need not be Redis's clock).
    local last = redis.call('ZRANGE', KEYS[i], '-1', '-1', 'WITHSCORES')
    redis.call('PEXPIRE', KEYS[i], math.max(1, tonumber(last[2]) - tonumber(ARGV[3])))
  end
end
return 0
