-- pin: hold contents an upload is about to store, before it moves a byte into place, so that a
-- sweep finding them unreferenced meanwhile puts them back instead of removing them (see
-- `garbage_settle.lua`). The pin lapses by itself if the upload dies before its enqueue, which
-- replaces it with the jobs' own references. A blocked content pins nothing.
-- KEYS[1]: the blocked contents   KEYS[2..]: each content's references
-- ARGV[1]: the pin   ARGV[2]: when it lapses (ms)   ARGV[3..]: the contents, in KEYS' order
-- Returns: 0 pinned; i when the i-th content is blocked (nothing pinned)
for i = 2, #KEYS do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i + 1]) == 1 then return i - 1 end
end
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
end
return 0
