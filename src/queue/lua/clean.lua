-- clean: remove finished jobs of one state that finished before a time, oldest first, as a delete
-- would (see `remove_job`): an administrator's clean-up ahead of the retention.
-- KEYS[1]: the state's index of finished jobs (`<finished>:<state>`, scored by when they finished)
-- ARGV[1]: now (ms)   ARGV[2]: the `{prefix}` tag   ARGV[3]: events channel
-- ARGV[4]: remove those finished before this (ms)   ARGV[5]: at most this many
-- Returns: {id, state, subject, payload, content, ...} of the jobs removed
local removed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4], 'LIMIT', 0, ARGV[5])) do
  local state, subject, payload, content = remove_job(ARGV[2], id, ARGV[1], 0, ARGV[3])
  -- A record gone some other way leaves only its place here.
  redis.call('ZREM', KEYS[1], id)
  if state then
    for _, v in ipairs({id, state, subject, payload, content}) do removed[#removed + 1] = v end
  end
end
return removed
