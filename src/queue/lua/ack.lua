-- ack: the job finished; record its result and schedule the record's expiry.
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list
-- ARGV[1]: job id   ARGV[2]: owner   ARGV[3]: lease   ARGV[4]: now (ms)   ARGV[5]: result (JSON)
-- ARGV[6]: retention (ms)   ARGV[7]: events channel
-- Returns: {1} completed (or already completed by this very lease);
--          {0, state} not owned: the lease was lost, the record is unchanged
redis.call('LREM', KEYS[2], 1, ARGV[1])
local status = lease_status(KEYS[1], ARGV[2], ARGV[3], 'completed')
if status == 'done' then return {1} end
if status ~= 'held' then return {0, status} end
redis.call('HSET', KEYS[1], 'state', 'completed', 'result', ARGV[5], 'progress', 100,
  'finished_at', ARGV[4], 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[1], 'error_code', 'error_detail', 'step')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
publish_event(ARGV[7], KEYS[1], ARGV[1])
return {1}
