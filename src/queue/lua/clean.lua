-- clean: remove finished jobs of one state, oldest first, as a delete would (see `remove_job`):
-- those that finished before a time (an administrator's clean-up ahead of the retention), or those
-- beyond the newest N (the cap on finished records by count).
-- KEYS[1]: the state's index of finished jobs (`<finished>:<state>`, scored by when they finished)
-- ARGV[1]: now (ms)   ARGV[2]: the `{prefix}` tag   ARGV[3]: events channel
-- ARGV[4]: remove those finished before this (ms), or '' to keep the newest ARGV[5] instead
-- ARGV[5]: how many to keep, when ARGV[4] is ''
-- ARGV[6]: delay of the outputs of a job cancelled while active (ms; its worker may still write)
-- ARGV[7]: at most this many removed
-- Returns: {ids looked at, id, state, subject, payload, content, ...} of the jobs removed
local ids
if ARGV[4] ~= '' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4], 'LIMIT', '0', ARGV[7])
else
  local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
  if excess <= 0 then return {'0'} end
  ids = redis.call('ZRANGE', KEYS[1], '0', math.min(excess, tonumber(ARGV[7])) - 1)
end
return remove_listed(ARGV[2], ids, KEYS[1], ARGV[1], ARGV[3], ARGV[6])
