-- garbage_settle: a sweep holding an entry has set its files aside and asks whether to remove them
-- or put them back; either way the entry is done. A content that was pinned or referenced since it
-- was claimed goes back: the upload that did so may have stored it before the sweep set it aside.
-- KEYS[1]: the garbage schedule
-- ARGV[1]: the entry   ARGV[2]: now (ms)   ARGV[3]: the `{prefix}` tag
-- Returns: 'remove' or 'keep'
redis.call('ZREM', KEYS[1], ARGV[1])
local content = string.match(ARGV[1], '^content:(.+)$')
if content and live_refs(content_key(ARGV[3], content), ARGV[2]) > 0 then return 'keep' end
return 'remove'
