-- activate: a worker just moved the id into its processing list; mark the job active, count the
-- attempt and hand out a new lease (the fencing token for every later call).
-- KEYS[1]: the job hash   KEYS[2]: the worker's processing list
-- ARGV[1]: job id   ARGV[2]: worker name (owner)   ARGV[3]: now (ms)   ARGV[4]: events channel
-- Returns: {'active', lease, attempts, max_attempts, payload}
--          {'skip', state} the job is not runnable (cancelled meanwhile, or its record expired):
--          the id is dropped from the processing list
local job = read_job(KEYS[1], true)
if job.state == 'active' and job.owner == ARGV[2] then
  -- A repeat of our own activation whose reply was lost: same lease, nothing counted twice.
  return {'active', job.lease, job.attempts, job.max_attempts, job.payload}
end
if job.state ~= 'queued' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  return {'skip', job.state or 'missing'}
end
-- A queued job has no step (every path back to queued clears it) and no due_at (promote clears it).
job.state = 'active'
job.attempts = tonumber(job.attempts) + 1
job.lease = tostring(tonumber(job.lease) + 1)
job.progress = 0
redis.call('HSET', KEYS[1], 'state', 'active', 'attempts', job.attempts, 'lease', job.lease,
  'owner', ARGV[2], 'started_at', ARGV[3], 'updated_at', ARGV[3], 'progress', 0,
  'version', next_version(job))
publish_event(ARGV[4], ARGV[1], job, ARGV[3])
return {'active', job.lease, tostring(job.attempts), job.max_attempts, job.payload}
