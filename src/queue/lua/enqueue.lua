-- enqueue: create jobs owned by one subject and put them at the back of the waiting list, all in
-- one step: a batch is queued whole or not at all. An id whose record exists already is left
-- alone, so a batch sent again (its first reply lost) creates nothing twice. Each new id joins the
-- subject's index of uploads; the index's two oldest ids are dropped if their records have
-- expired, so an index never outgrows its subject's live jobs by much, listed or not.
-- KEYS[1]: the waiting list   KEYS[2]: the subject's uploads index
-- KEYS[3..]: the jobs' hashes, in the order of their ids
-- ARGV[1]: max attempts   ARGV[2]: now (ms)   ARGV[3]: events channel (a channel, not a key)
-- ARGV[4]: subject ('' for anonymous)   ARGV[5]: the prefix of a job's key (id follows)
-- ARGV[6..]: id, payload (JSON), id, payload, ...
-- Returns: how many jobs were created
local oldest = redis.call('ZRANGE', KEYS[2], '-', '+', 'BYLEX', 'LIMIT', 0, 2)
for _, id in ipairs(oldest) do
  if redis.call('EXISTS', ARGV[5] .. id) == 0 then redis.call('ZREM', KEYS[2], id) end
end
local created = 0
for i = 3, #KEYS do
  local id, payload = ARGV[2 * i], ARGV[2 * i + 1]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'state', 'queued', 'attempts', 0, 'max_attempts', ARGV[1],
      'stalls', 0, 'lease', 0, 'progress', 0, 'payload', payload, 'subject', ARGV[4],
      'created_at', ARGV[2], 'updated_at', ARGV[2], 'version', 1)
    redis.call('LPUSH', KEYS[1], id)
    redis.call('ZADD', KEYS[2], 0, id)
    publish_event(ARGV[3], id, { state = 'queued', max_attempts = ARGV[1], version = 1 }, ARGV[2])
    created = created + 1
  end
end
return created
