-- unpin: an upload that pinned contents will not enqueue its jobs after all; a content it leaves
-- unreferenced goes on the garbage schedule.
-- KEYS[1]: the garbage schedule   KEYS[2..]: each content's references
-- ARGV[1]: the pin   ARGV[2]: now (ms)   ARGV[3..]: the contents, in KEYS' order
-- Returns: how many contents became garbage
local freed = 0
for i = 2, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
  if live_refs(KEYS[i], ARGV[2]) == 0 then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[2], 'content:' .. ARGV[i + 1])
    freed = freed + 1
  end
end
return freed
