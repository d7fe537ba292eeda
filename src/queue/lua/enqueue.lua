-- enqueue: create jobs owned by one subject and put them at the back of their line, all in
-- one step: a batch is queued whole or not at all. An id whose record exists already is left
-- alone, so a batch sent again (its first reply lost) creates nothing twice. Each new id joins the
-- subject's index of uploads; the index's two oldest ids are dropped if their records have
-- expired, so an index never outgrows its subject's live jobs by much, listed or not.
-- A job may name the content it reads: it then counts as one of the content's references, which
-- takes over the upload's pin of it. A blocked content refuses the whole batch, and so does a pin
-- that lapsed (a sweep may have removed the file since): an error, as nothing was created.
-- KEYS[1]: the waiting list   KEYS[2]: the subject's uploads index   KEYS[3]: the blocked contents
-- KEYS[4..]: the jobs' hashes, in the order of their ids
-- ARGV[1]: max attempts   ARGV[2]: now (ms)   ARGV[3]: events channel (a channel, not a key)
-- ARGV[4]: subject ('' for anonymous)   ARGV[5]: the `{prefix}` tag   ARGV[6]: the pin ('' none)
-- ARGV[7..]: per job: id, payload (JSON), content ('' none), delete token digest ('' none),
-- priority ('high', or '' for bulk; see `line_up`)
-- Returns: how many jobs were created; -i when the i-th job's content is blocked (none created)
local jobs = #KEYS - 3
for i = 1, jobs do
  local content = ARGV[5 * i + 4]
  if content ~= '' and redis.call('SISMEMBER', KEYS[3], content) == 1 then return -i end
  if content ~= '' and ARGV[6] ~= '' then
    local lapses = redis.call('ZSCORE', content_key(ARGV[5], content), ARGV[6])
    if not lapses or tonumber(lapses) < tonumber(ARGV[2]) then
      return redis.error_reply('the upload\'s pin of its content lapsed before its enqueue')
    end
  end
end
local oldest = redis.call('ZRANGE', KEYS[2], '-', '+', 'BYLEX', 'LIMIT', '0', '2')
for _, id in ipairs(oldest) do
  if redis.call('EXISTS', ARGV[5] .. ':job:' .. id) == 0 then redis.call('ZREM', KEYS[2], id) end
end
local created = 0
for i = 1, jobs do
  local job_key = KEYS[i + 3]
  local id, payload, content, digest, priority = ARGV[5 * i + 2], ARGV[5 * i + 3],
    ARGV[5 * i + 4], ARGV[5 * i + 5], ARGV[5 * i + 6]
  if redis.call('EXISTS', job_key) == 0 then
    redis.call('HSET', job_key, 'state', 'queued', 'attempts', '0', 'max_attempts', ARGV[1],
      'stalls', '0', 'lease', '0', 'progress', '0', 'payload', payload, 'subject', ARGV[4],
      'created_at', ARGV[2], 'updated_at', ARGV[2], 'version', '1')
    if content ~= '' then
      redis.call('HSET', job_key, 'content', content)
      redis.call('ZADD', content_key(ARGV[5], content), '+inf', id)
      redis.call('PERSIST', content_key(ARGV[5], content))
    end
    if digest ~= '' then redis.call('HSET', job_key, 'delete_digest', digest) end
    if priority == HIGH then redis.call('HSET', job_key, 'priority', HIGH) end
    line_up(KEYS[1], id, priority == HIGH, false)
    redis.call('ZADD', KEYS[2], '0', id)
    publish_event(ARGV[3], id, { state = 'queued', max_attempts = ARGV[1], version = '1' }, ARGV[2])
    created = created + 1
  end
end
if ARGV[6] ~= '' then
  for i = 1, jobs do
    local content = ARGV[5 * i + 4]
    if content ~= '' then redis.call('ZREM', content_key(ARGV[5], content), ARGV[6]) end
  end
end
return created
