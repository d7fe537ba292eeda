-- expire: remove finished jobs whose state's retention is over, as a delete would (see
-- `remove_job`), so their files go with their records, and the entries of the expiry schedule
-- earlier versions kept (`<finished>`, scored by when to remove) as they fall due. Several
-- instances may run it at once: each job is removed by whichever run reaches it first, and the
-- others find no record.
-- KEYS[1..3]: the indexes of completed, failed and cancelled jobs (scored by when they finished)
-- KEYS[4]: the expiry schedule of earlier versions
-- ARGV[1]: now (ms)   ARGV[2]: the `{prefix}` tag   ARGV[3]: events channel
-- ARGV[4..6]: how long completed, failed and cancelled jobs are kept (ms)   ARGV[7]: at most so many
-- Returns: {ids looked at, id, state, subject, payload, content, id, ...} of the removed jobs
local room = tonumber(ARGV[7])
local answer = {0}
for i = 1, 4 do
  if room <= 0 then break end
  local before = ARGV[1]
  if i <= 3 then before = string.format('%d', tonumber(ARGV[1]) - tonumber(ARGV[3 + i])) end
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', before, 'LIMIT', '0', room)
  if #due > 0 then
    -- No delay for outputs: what a cancelled job's worker might still write after a very short
    -- retention is an orphan the orphan sweep removes.
    local removed = remove_listed(ARGV[2], due, KEYS[i], ARGV[1], ARGV[3], 0)
    answer[1] = answer[1] + tonumber(removed[1])
    for j = 2, #removed do answer[#answer + 1] = removed[j] end
    room = room - #due
  end
end
answer[1] = tostring(answer[1])
return answer
