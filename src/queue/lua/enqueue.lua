-- enqueue: create jobs and put them at the back of the waiting list, all in one step: a batch is
-- queued whole or not at all. An id whose record exists already is left alone, so a batch sent
-- again (its first reply lost) creates nothing twice.
-- KEYS[1]: the waiting list   KEYS[2..]: the jobs' hashes, in the order of their ids
-- ARGV[1]: max attempts   ARGV[2]: now (ms)   ARGV[3]: events channel (a channel, not a key)
-- ARGV[4..]: id, payload (JSON), id, payload, ...
-- Returns: how many jobs were created
local created = 0
for i = 2, #KEYS do
  local id, payload = ARGV[2 * i], ARGV[2 * i + 1]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'state', 'queued', 'attempts', 0, 'max_attempts', ARGV[1],
      'stalls', 0, 'lease', 0, 'progress', 0, 'payload', payload, 'created_at', ARGV[2],
      'updated_at', ARGV[2], 'version', 1)
    redis.call('LPUSH', KEYS[1], id)
    publish_event(ARGV[3], id, { state = 'queued', max_attempts = ARGV[1], version = 1 }, ARGV[2])
    created = created + 1
  end
end
return created
