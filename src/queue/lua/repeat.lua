-- repeat: take the occurrence of a repeatable task that is due, if any. Every instance asks on
-- its own timer; this one atomic step moves the task's due time on by its interval before it
-- answers, so each occurrence goes to exactly one caller across all instances. The schedule lives
-- in Redis, so a restart neither runs a task early nor forgets it. A task never run before is due
-- at once; occurrences missed while nothing ran are not made up one by one: the next comes one
-- interval after the run that takes them.
-- KEYS[1]: the schedule (sorted set: task → when it is next due, ms)
-- KEYS[2]: the tasks' records (hash: `<task>:runs`, `<task>:last_run`, `<task>:last_runner`)
-- ARGV[1]: the task's name   ARGV[2]: now (ms)   ARGV[3]: the interval (ms)   ARGV[4]: the caller
-- Returns: {1, runs so far, next due} when the caller is to run it now; {0, due} when it is not
-- due yet
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) > tonumber(ARGV[2]) then return {0, due} end
local next_due = tonumber(ARGV[2]) + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], next_due, ARGV[1])
local runs = redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':runs', '1')
redis.call('HSET', KEYS[2], ARGV[1] .. ':last_run', ARGV[2], ARGV[1] .. ':last_runner', ARGV[4])
return {1, runs, tostring(next_due)}
