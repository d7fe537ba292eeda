-- purge: remove the jobs that reference a content, whoever owns them, at most so many at a time,
-- and (when asked) block the content, so no job may reference it again. The block comes with the
-- first batch, so an upload of the same bytes is either among the jobs removed by this or a later
-- batch, or refused.
-- KEYS[1]: the blocked contents   KEYS[2]: the content's references
-- ARGV[1]: the content   ARGV[2]: now (ms)   ARGV[3]: the `{prefix}` tag   ARGV[4]: events channel
-- ARGV[5]: delay of an active job's outputs (ms)   ARGV[6]: '1' to block the content
-- ARGV[7]: at most so many jobs
-- Returns: {ids looked at, id, state, subject, payload, content, id, ...} of the removed jobs
if ARGV[6] == '1' then redis.call('SADD', KEYS[1], ARGV[1]) end
local referencing = redis.call('ZRANGEBYSCORE', KEYS[2], '+inf', '+inf', 'LIMIT', '0', ARGV[7])
local removed = {tostring(#referencing)}
for _, id in ipairs(referencing) do
  local state, subject, payload, content = remove_job(ARGV[3], id, ARGV[2], ARGV[5], ARGV[4])
  if state then
    for _, v in ipairs({id, state, subject, payload, content}) do removed[#removed + 1] = v end
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
if live_refs(KEYS[2], ARGV[2]) == 0 then
  redis.call('ZADD', ARGV[3] .. ':garbage', 'NX', ARGV[2], 'content:' .. ARGV[1])
end
return removed
