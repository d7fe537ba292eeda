-- garbage_claim: take what is due on the garbage schedule for one sweep, which then has it for a
-- lease: its entries are due again only when the lease ends, so two sweeps never take the same
-- entry, and one that dies mid-way leaves it for the next. The sweep removes an entry only once
-- its files are dealt with. Each content comes with whether it is referenced (a new upload of
-- the same bytes): then its files are not to be removed, but put back if a sweep set them aside.
-- KEYS[1]: the garbage schedule
-- ARGV[1]: now (ms)   ARGV[2]: the lease (ms)   ARGV[3]: at most so many   ARGV[4]: the `{prefix}` tag
-- ARGV[5..]: only these entries, when given (a deletion sweeping what it just scheduled)
-- Returns: {entry, 'referenced' or 'free', entry, ...} taken
local candidates
if #ARGV > 4 then
  candidates = {}
  for i = 5, #ARGV do
    local due = redis.call('ZSCORE', KEYS[1], ARGV[i])
    if due and tonumber(due) <= tonumber(ARGV[1]) then candidates[#candidates + 1] = ARGV[i] end
  end
else
  candidates = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[3])
end
local taken = {}
for _, entry in ipairs(candidates) do
  local content = string.match(entry, '^content:(.+)$')
  local referenced = content and live_refs(content_key(ARGV[4], content), ARGV[1]) > 0
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), entry)
  taken[#taken + 1] = entry
  taken[#taken + 1] = referenced and 'referenced' or 'free'
end
return taken
