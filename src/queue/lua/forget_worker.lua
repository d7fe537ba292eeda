-- forget_worker: drop a dead instance's worker from the registry once its processing list is empty.
-- KEYS[1]: the instance's heartbeat   KEYS[2]: the processing list   KEYS[3]: the set of known workers
-- ARGV[1]: the worker name
-- Returns: 1 forgotten; 0 still alive or still holding jobs
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('LLEN', KEYS[2]) > 0 then return 0 end
redis.call('SREM', KEYS[3], ARGV[1])
return 1
