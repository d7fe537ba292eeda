-- Prepended to every script (see scripts.rs): helpers shared by all transitions.

-- The fields a job's event is built from, read with one HMGET (see `read_job`).
-- Reads the event fields (plus owner and lease, for the fence, and the payload when asked) with one
-- HMGET into a table keyed by name. Each redis.call has a fixed cost well above that of a small
-- command, so the hot scripts read everything they need in this one call.
local function read_job(job_key, with_payload)
  local f = redis.call('HMGET', job_key, 'state', 'attempts', 'max_attempts', 'progress', 'step',
    'error_code', 'error_detail', 'owner', 'lease', 'version', 'updated_at', 'priority',
    with_payload and 'payload' or 'state')
  return { state = f[1], attempts = f[2], max_attempts = f[3], progress = f[4], step = f[5],
    error_code = f[6], error_detail = f[7], owner = f[8], lease = f[9], version = f[10],
    updated_at = f[11], high = f[12] == 'high', payload = with_payload and f[13] or nil }
end

-- Priorities. The waiting list holds the ids of bulk jobs and, for each high-priority job, one
-- marker, always pushed at the claim end; the high-priority ids themselves wait in order in
-- `<waiting>:high`. Workers still claim from the one waiting list with BLMOVE; a claimed marker
-- is resolved to the oldest high-priority job when it is activated (see `resolve_marker`).
-- Every script that puts a job in line or takes one out goes through `line_up` and `leave_line`,
-- which keep one marker per high-priority id.
local HIGH = 'high'

-- Puts a queued job in line: at the back, or at the claim end (`front`) for a job returned
-- unfinished, which runs next.
local function line_up(waiting, id, high, front)
  if high then
    redis.call(front and 'RPUSH' or 'LPUSH', waiting .. ':high', id)
    redis.call('RPUSH', waiting, HIGH)
  else
    redis.call(front and 'RPUSH' or 'LPUSH', waiting, id)
  end
end

-- Takes a queued job out of line (cancelled or deleted), with one marker if it had one. Markers
-- sit at the claim end, so LREM looks for one from there.
local function leave_line(waiting, id, high)
  if high then
    if redis.call('LREM', waiting .. ':high', '1', id) == 1 then
      redis.call('LREM', waiting, '-1', HIGH)
    end
  else
    redis.call('LREM', waiting, '1', id)
  end
end

-- A bulk id from near the claim end of the waiting list (one that has waited longest), or nil
-- when none waits. Between it and the claim end lie only markers and ids returned to the front.
-- The few entries at the claim end are read first; under a long high-priority backlog the entry
-- just past its markers is looked up by index instead, so the cost stays small however long the
-- backlog (a list's index lookup runs in Redis, without handing the entries to Lua). Called while
-- a claimed marker is being resolved: its own id is still in `<waiting>:high`, so the waiting
-- list holds one marker fewer than that.
local function oldest_bulk(waiting)
  local markers = redis.call('LLEN', waiting .. ':high') - 1
  if redis.call('LLEN', waiting) <= markers then return nil end
  local ids = redis.call('LRANGE', waiting, '-64', '-1')
  for i = #ids, 1, -1 do
    if ids[i] ~= HIGH then return ids[i] end
  end
  local past = redis.call('LINDEX', waiting, -(markers + 1))
  if past and past ~= HIGH then return past end
  return nil
end

-- Resolves a marker a worker claimed into `processing` to the job it starts: the oldest
-- high-priority job, except that after every `burst` of those one bulk job starts instead if any
-- waits (the marker goes back to the claim end), so a stream of high-priority uploads cannot
-- starve the bulk ones. The count restarts when no bulk job waits, so the lookup runs once per
-- burst at most. The id takes the marker's place in the processing list.
-- Returns the id, or nil when no high-priority job is left (one removed from line took its own
-- marker, so this is only a marker whose job left by a path that could not find it): the
-- marker is then dropped.
local function resolve_marker(tag, processing, burst)
  local waiting = tag .. ':waiting'
  local streak_key = tag .. ':high-streak'
  local id
  if redis.call('INCR', streak_key) > tonumber(burst) then
    redis.call('SET', streak_key, '0')
    id = oldest_bulk(waiting)
    if id then
      redis.call('LREM', waiting, '-1', id)
      redis.call('RPUSH', waiting, HIGH)
    end
  end
  if not id then id = redis.call('RPOP', waiting .. ':high') end
  redis.call('LREM', processing, '1', HIGH)
  if id then redis.call('LPUSH', processing, id) end
  return id or nil
end

-- A counter stored as a string, plus one, as a string. Formatted as an integer once, here: Lua
-- turns a number into text with the C library's floating-point printf wherever it meets one
-- (a concatenation, tostring), a cost the hot scripts would pay several times a job.
local function plus_one(counter)
  return string.format('%d', (tonumber(counter) or 0) + 1)
end

-- The job's next version. Every transition stores it with its HSET (the job was read anyway, so
-- this costs no call) and publishes it, so a subscriber can tell an event older than a snapshot it
-- read from one that is newer, whatever the clocks of the processes involved.
local function next_version(job)
  job.version = plus_one(job.version)
  return job.version
end

-- Deletes the named fields that the job has (a no-op HDEL still costs a call).
local function clear(job_key, job, ...)
  local present = {}
  for _, field in ipairs({...}) do
    if job[field] then present[#present + 1] = field end
  end
  if #present > 0 then redis.call('HDEL', job_key, unpack(present)) end
end

local function json_or_null(s)
  if s then return cjson.encode(s) end
  return 'null'
end

-- Publishes one event: the job as a client shows it, named as the job status is. `job` holds the
-- values after the transition; `result` is raw JSON (completion only), `due_at` a time (retrying).
-- Built by concatenation rather than cjson on a table: this runs in every transition, and strings
-- that may need escaping still go through cjson.
local function publish_event(channel, id, job, now, result, due_at)
  local error = 'null'
  if job.error_code then
    error = '{"code":' .. cjson.encode(job.error_code) .. ',"detail":' ..
      cjson.encode(job.error_detail or '') .. '}'
  end
  local extra = ''
  if result then extra = ',"result":' .. result end
  if due_at then extra = extra .. ',"due_at":' .. due_at end
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '","state":"' .. job.state ..
    '","attempts":' .. (job.attempts or '0') .. ',"max_attempts":' .. (job.max_attempts or '0') ..
    ',"progress":' .. (job.progress or '0') .. ',"step":' .. json_or_null(job.step) ..
    ',"error":' .. error .. extra .. ',"version":' .. (job.version or '0') ..
    ',"updated_at":' .. now .. '}')
end

-- The fence: a worker may change a job only while it still holds the lease it was given.
-- Returns the job's fields and 'held' (owner and lease match, job active), 'done' (owner and lease
-- match and the job is already in `done_state`: a repeat of our own call whose reply was lost), or
-- the current state ('missing' for no record).
local function lease_status(job_key, owner, lease, done_state)
  local job = read_job(job_key)
  if not job.state then return job, 'missing' end
  if job.owner == owner and job.lease == lease then
    if job.state == 'active' then return job, 'held' end
    if job.state == done_state then return job, 'done' end
  end
  return job, job.state
end

-- Publishes the job as it is stored now, after counting a new version (for the less frequent
-- transitions, which do not read the job beforehand).
local function publish_current(channel, job_key, id, now)
  redis.call('HINCRBY', job_key, 'version', '1')
  local job = read_job(job_key)
  local result, due_at
  if job.state == 'completed' then result = redis.call('HGET', job_key, 'result') end
  if job.state == 'retrying' then due_at = redis.call('HGET', job_key, 'due_at') end
  publish_event(channel, id, job, now, result or nil, due_at or nil)
end

-- True while processing is paused across all instances (`{prefix}:paused`): workers finish what
-- they hold and claim nothing new. `tag` is the `{prefix}` tag.
local function paused(tag)
  return redis.call('EXISTS', tag .. ':paused') == 1
end

-- Whether a job may start now: {'paused'} while processing is paused, {'limited', ms} when
-- this window's starts are used up (for the ms until it ends), nil when it may. `limit` job
-- starts per `window` ms across all instances (0: no limit), counted in fixed windows of Redis's
-- own clock, so instances whose clocks differ count in the same windows. `pause_checked`: the
-- caller looked at the pause flag already in this script.
local function admission(tag, limit, window, pause_checked)
  if not pause_checked and paused(tag) then return {'paused'} end
  if tonumber(limit) > 0 then
    local time = redis.call('TIME')
    local clock = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local started = clock - clock % tonumber(window)
    local starts = tag .. ':starts:' .. started
    local count = redis.call('INCR', starts)
    if count == 1 then redis.call('PEXPIRE', starts, 2 * tonumber(window)) end
    if count > tonumber(limit) then
      return {'limited', tostring(started + tonumber(window) - clock)}
    end
  end
  return nil
end

-- Activation: a worker just moved an id (or a marker, see `resolve_marker`) into its processing
-- list; mark the job active, count the attempt and hand out a new lease (the fencing token for
-- every later call). Used by `activate.lua` after a BLMOVE, and by `ack.lua` for the next id it
-- claims, so a busy worker finishes one job and starts the next in one round trip.
-- `limit`, `window` and `pause_checked`: as `admission`; `burst`: as `resolve_marker`; `tag`: the
-- `{prefix}` tag.
-- Returns {'active', lease, attempts, max_attempts, payload, queued_at, id}; {'paused'} or
-- {'limited', ms} when the job may not start now (see `admission`; the id or marker goes back to
-- the claim end of the waiting list); or {'skip', state} when the job is not runnable (cancelled
-- meanwhile, or its record expired; 'missing' for no record): the id is then dropped from the
-- processing list.
local function activate_job(job_key, processing, id, owner, now, channel, limit, window, burst,
    pause_checked, tag)
  local admitted = false
  if id == HIGH then
    -- Admitted before it is resolved, so a refused marker simply goes back in line.
    local refused = admission(tag, limit, window, pause_checked)
    if refused then
      redis.call('LREM', processing, '1', HIGH)
      redis.call('RPUSH', tag .. ':waiting', HIGH)
      return refused
    end
    id = resolve_marker(tag, processing, burst)
    if not id then return {'skip', 'missing'} end
    job_key = tag .. ':job:' .. id
    admitted = true
  end
  local job = read_job(job_key, true)
  -- When it last entered the queue (every path to queued stamps updated_at): the wait is measured
  -- from there.
  local queued_at = job.updated_at or now
  if job.state == 'active' and job.owner == owner then
    -- A repeat of our own activation whose reply was lost: same lease, nothing counted twice.
    return {'active', job.lease, job.attempts, job.max_attempts, job.payload, job.updated_at, id}
  end
  if job.state ~= 'queued' then
    redis.call('LREM', processing, '1', id)
    return {'skip', job.state or 'missing'}
  end
  if not admitted then
    local refused = admission(tag, limit, window, pause_checked)
    if refused then
      -- Back where it was taken from, first in line again.
      redis.call('LREM', processing, '1', id)
      line_up(tag .. ':waiting', id, job.high, true)
      return refused
    end
  end
  -- A queued job has no step (every path back to queued clears it) and no due_at (promote clears it).
  job.state = 'active'
  job.attempts = plus_one(job.attempts)
  job.lease = plus_one(job.lease)
  job.progress = '0'
  redis.call('HSET', job_key, 'state', 'active', 'attempts', job.attempts, 'lease', job.lease,
    'owner', owner, 'started_at', now, 'updated_at', now, 'progress', '0',
    'version', next_version(job))
  publish_event(channel, id, job, now)
  return {'active', job.lease, job.attempts, job.max_attempts, job.payload, queued_at, id}
end

-- Takes the id out of the worker's processing list, once the fence was checked and with the job's
-- job as it was found. A job still `queued` in the list is one whose activation never reached
-- the disk (Redis crashed and lost it): it would be in no list at all, so it goes back in line,
-- at the claim end.
local function release(processing, waiting, id, found)
  if redis.call('LREM', processing, '1', id) == 1 and found.state == 'queued' then
    line_up(waiting, id, found.high, true)
  end
end

-- A finished job joins its final state's index (`<finished>:<state>`, scored by when it
-- finished): the admin API counts it, lists it newest first and cleans it by age there, and
-- `expire.lua` removes it, with its references, once its state's retention is over, so disk and
-- Redis shrink together; never silently by a TTL, which would leave its content counted.
local function schedule_expiry(finished, id, now, state)
  redis.call('ZADD', finished .. ':' .. state, now, id)
end

-- Counts a job reaching a final state (or a retry) in the queue's statistics hash, kept beside the
-- job's record (`{prefix}:stats`, named from the job's key, in the same slot): `completed`,
-- `failed`, `cancelled`, `retried`, and `failed:<code>` for a failure's error code. Read by
-- `stats.lua` for `/metrics`, so every process reports the whole queue. `tag`: the `{prefix}` tag
-- when the caller has it (else it is read off the job's key, which costs a pattern match).
local function count(job_key, state, code, tag)
  tag = tag or string.match(job_key, '^(.*):job:')
  if not tag then return end
  local stats = tag .. ':stats'
  redis.call('HINCRBY', stats, state, '1')
  if code then redis.call('HINCRBY', stats, state .. ':' .. code, '1') end
end

-- The keys of contents and of subjects' indexes, built from the `{prefix}` tag the caller passes:
-- the same names as `keys.rs` gives, all in the tag's one Redis Cluster slot.
local function content_key(tag, content)
  return tag .. ':content:' .. content
end

local function uploads_key(tag, subject)
  if not subject or subject == '' then return tag .. ':uploads:anonymous' end
  return tag .. ':uploads:subject:' .. subject
end

-- How many live references a content has: jobs (scored +inf) and pins of uploads not yet enqueued
-- (scored by when they lapse). Lapsed pins (their upload died) are dropped first.
local function live_refs(refs, now)
  redis.call('ZREMRANGEBYSCORE', refs, '-inf', '(' .. now)
  return redis.call('ZCARD', refs)
end

-- Removes a job whole, in any state: its record, its place in the waiting list or the retry
-- schedule, its expiry, its subject's index and its reference to its content. What storage holds
-- for it goes on the garbage schedule for the sweep, which removes files only after this: the
-- job's outputs (`outputs:<id>`, due after `outputs_delay` ms when it is active or cancelled, as a
-- worker may still write until its lease is refused), and its content (`content:<c>`) when no other job or
-- pin references it. An active job's id stays in its worker's processing list, whose next ack or
-- fail finds no record and drops it. Publishes `{"id", "deleted": true}`.
-- Returns nil (no record), or the state it was in, its subject, its payload and its content ('' for
-- none).
local function remove_job(tag, id, now, outputs_delay, channel)
  local job_key = tag .. ':job:' .. id
  local f = redis.call('HMGET', job_key, 'state', 'subject', 'content', 'payload', 'priority')
  local state = f[1]
  if not state then return nil end
  if state == 'queued' then
    leave_line(tag .. ':waiting', id, f[5] == 'high')
  elseif state == 'retrying' then
    redis.call('ZREM', tag .. ':retrying', id)
  end
  redis.call('ZREM', tag .. ':finished:' .. state, id)
  -- The expiry schedule of earlier versions, until its last entry is gone (see `expire.lua`).
  redis.call('ZREM', tag .. ':finished', id)
  redis.call('ZREM', uploads_key(tag, f[2]), id)
  local garbage = tag .. ':garbage'
  local due = tonumber(now)
  if state == 'active' or state == 'cancelled' then due = due + tonumber(outputs_delay) end
  redis.call('ZADD', garbage, 'NX', due, 'outputs:' .. id)
  if f[3] and f[3] ~= '' then
    local refs = content_key(tag, f[3])
    redis.call('ZREM', refs, id)
    if live_refs(refs, now) == 0 then
      redis.call('ZADD', garbage, 'NX', now, 'content:' .. f[3])
    end
  end
  redis.call('DEL', job_key)
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '","deleted":true}')
  return state, f[2] or '', f[4] or '', f[3] or ''
end

-- Removes each of `ids` as `remove_job` does (`outputs_delay` as there) and takes it out of `index` (the schedule or index it
-- was listed by: a record gone some other way leaves only its place there). Returns {how many ids
-- it looked at, then id, state, subject, payload, content, ...} of the jobs removed.
local function remove_listed(tag, ids, index, now, channel, outputs_delay)
  local removed = {tostring(#ids)}
  for _, id in ipairs(ids) do
    local state, subject, payload, content = remove_job(tag, id, now, outputs_delay, channel)
    redis.call('ZREM', index, id)
    if state then
      for _, v in ipairs({id, state, subject, payload, content}) do removed[#removed + 1] = v end
    end
  end
  return removed
end
