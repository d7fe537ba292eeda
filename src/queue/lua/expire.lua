-- expire: remove finished jobs whose retention is over, as a delete would (see `remove_job`), so
-- their files go with their records. Several instances may run it at once: each job is removed by
-- whichever run reaches it first, and the others find no record.
-- KEYS[1]: the expiry schedule of finished jobs
-- ARGV[1]: now (ms)   ARGV[2]: the `{prefix}` tag   ARGV[3]: events channel   ARGV[4]: at most so many
-- Returns: {ids looked at, id, state, subject, payload, content, id, ...} of the removed jobs
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[4])
-- Past their retention, cancelled jobs' workers have long been fenced off: no delay.
return remove_listed(ARGV[2], due, KEYS[1], ARGV[1], ARGV[3], 0)
