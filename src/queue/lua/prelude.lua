-- Prepended to every script (see scripts.rs): helpers shared by all transitions.

-- Publishes the job's current state as one JSON event on `channel`. The event has the fields a client
-- needs to show the job, named as the job status is: id, state, attempts, max_attempts, progress, step,
-- error ({code, detail} or null), result (on completion), due_at (while retrying), updated_at.
local function publish_event(channel, job_key, id)
  local f = redis.call('HMGET', job_key, 'state', 'attempts', 'max_attempts', 'progress', 'step',
    'error_code', 'error_detail', 'result', 'due_at', 'updated_at')
  local event = {
    id = id,
    state = f[1],
    attempts = tonumber(f[2]) or 0,
    max_attempts = tonumber(f[3]) or 0,
    progress = tonumber(f[4]) or 0,
    step = f[5] or cjson.null,
    error = cjson.null,
    updated_at = tonumber(f[10]) or 0,
  }
  if f[6] then event.error = { code = f[6], detail = f[7] or '' } end
  if f[8] and f[1] == 'completed' then event.result = cjson.decode(f[8]) end
  if f[9] and f[1] == 'retrying' then event.due_at = tonumber(f[9]) end
  redis.call('PUBLISH', channel, cjson.encode(event))
end

-- The fence: a worker may change a job only while it still holds the lease it was given.
-- Returns 'held' (owner and lease match, job active), 'done' (owner and lease match and the job is
-- already in `done_state`: a repeat of our own call whose reply was lost), or the current state.
local function lease_status(job_key, owner, lease, done_state)
  local f = redis.call('HMGET', job_key, 'state', 'owner', 'lease')
  if not f[1] then return 'missing' end
  if f[2] == owner and f[3] == lease then
    if f[1] == 'active' then return 'held' end
    if f[1] == done_state then return 'done' end
  end
  return f[1]
end
