-- delete: remove one job for good, in any state, if the caller may: its subject (a named one:
-- the anonymous subject is everyone without sign-in), the holder of its delete token, or an
-- administrator. What
-- storage holds for it is scheduled for the sweep (see `remove_job` in the prelude).
-- KEYS[1]: the job hash
-- ARGV[1]: job id   ARGV[2]: now (ms)   ARGV[3]: the `{prefix}` tag   ARGV[4]: events channel
-- ARGV[5]: delay of an active job's outputs (ms)   ARGV[6]: the caller's subject ('' for none)
-- ARGV[7]: digest of the delete token presented ('' for none)
-- ARGV[8]: '1' for an administrator, who may delete any job
-- Returns: {state it was in, subject, payload, content}; {} for no record, or one the caller may
-- not delete
local f = redis.call('HMGET', KEYS[1], 'subject', 'delete_digest')
if not f[1] then return {} end
local owner = ARGV[6] ~= '' and f[1] == ARGV[6]
local holder = ARGV[7] ~= '' and f[2] == ARGV[7]
if not (owner or holder or ARGV[8] == '1') then return {} end
return {remove_job(ARGV[3], ARGV[1], ARGV[2], ARGV[5], ARGV[4])}
