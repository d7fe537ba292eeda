-- promote: put retries whose backoff is over back in line. Several instances may run it
-- at once: the ZREM inside this one atomic script is what makes each job promoted exactly once.
-- KEYS[1]: the retry schedule   KEYS[2]: the waiting list   KEYS[3..]: the hashes of the candidates
-- ARGV[1]: now (ms)   ARGV[2]: events channel   ARGV[3..]: the candidates' ids, in KEYS order
-- Returns: how many jobs were promoted
local promoted = 0
for i = 3, #KEYS do
  local id = ARGV[i]
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], id)
    local f = redis.call('HMGET', KEYS[i], 'state', 'priority')
    if f[1] == 'retrying' then
      redis.call('HSET', KEYS[i], 'state', 'queued', 'updated_at', ARGV[1])
      redis.call('HDEL', KEYS[i], 'due_at', 'step')
      line_up(KEYS[2], id, f[2] == 'high', false)
      publish_current(ARGV[2], KEYS[i], id, ARGV[1])
      promoted = promoted + 1
    end
  end
end
return promoted
