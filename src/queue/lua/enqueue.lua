-- enqueue: create a job record and put it at the back of the waiting list, in one step.
-- KEYS[1]: the job hash   KEYS[2]: the waiting list
-- ARGV[1]: job id   ARGV[2]: payload (JSON)   ARGV[3]: max attempts   ARGV[4]: now (ms)
-- ARGV[5]: events channel (a channel, not a key)
-- Returns: 1 enqueued; 0 the id exists already (a retried enqueue changes nothing)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'max_attempts', ARGV[3], 'stalls', 0,
  'lease', 0, 'progress', 0, 'payload', ARGV[2], 'created_at', ARGV[4], 'updated_at', ARGV[4],
  'version', 1)
redis.call('LPUSH', KEYS[2], ARGV[1])
publish_event(ARGV[5], ARGV[1], { state = 'queued', max_attempts = ARGV[3], version = 1 }, ARGV[4])
return 1
