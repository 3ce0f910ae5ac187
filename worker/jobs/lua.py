"""The job store's Lua scripts: every change that must not interleave is one script.

Each runs atomically on the Redis server and reads the server's clock (``TIME``),
so workers on machines with skewed clocks agree on timestamps.
"""

# Server time as "seconds.micros", exact: Lua numbers would lose the last digits.
NOW = """
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
"""

# KEYS: job, segments, all-index, tenant-index, status-index[, batch-index]
# ARGV: id, created score, batch score, ttl (0: none), field, value, ...
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
for i = 3, 5 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
if KEYS[6] then redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1]) end
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""

# KEYS: job, segments, then one status index per status in ARGV order.
# ARGV: id, target, ttl, output json or '', error json or '', then per status: name, rank, terminal.
# Returns {1, previous status, created_at, now} or {0, current status or false}.
TRANSITION = (
    NOW
    + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, false} end
local id, target = ARGV[1], ARGV[2]
local cur_rank, cur_idx, to_rank, to_idx, terminal
for i = 0, (#ARGV - 5) / 3 - 1 do
  local name, rank = ARGV[6 + 3 * i], tonumber(ARGV[7 + 3 * i])
  if name == cur then cur_rank, cur_idx = rank, KEYS[3 + i] end
  if name == target then to_rank, to_idx, terminal = rank, KEYS[3 + i], ARGV[8 + 3 * i] == '1' end
end
if not to_rank then return redis.error_reply('unknown status ' .. target) end
if cur_rank and to_rank <= cur_rank then return {0, cur} end
local created = redis.call('HGET', KEYS[1], 'created_at')
local score = cur_idx and redis.call('ZSCORE', cur_idx, id)
if not score then score = tonumber(created) * 1000 end
if cur_idx then redis.call('ZREM', cur_idx, id) end
redis.call('ZADD', to_idx, score, id)
redis.call('HSET', KEYS[1], 'status', target, 'updated_at', now)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'output', ARGV[4]) end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[5])
elseif target == 'succeeded' then
  -- an error recorded by an earlier attempt is no longer the job's story
  redis.call('HDEL', KEYS[1], 'error')
end
if target == 'running' and redis.call('HEXISTS', KEYS[1], 'started_at') == 0 then
  redis.call('HSET', KEYS[1], 'started_at', now)
end
if terminal then
  redis.call('HSET', KEYS[1], 'finished_at', now)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return {1, cur, created or false, now}
"""
)

# KEYS: job. ARGV: field, value, ...  Never recreates an expired record.
UPDATE = (
    NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'updated_at', now, unpack(ARGV))
return now
"""
)

BEGIN_ATTEMPT = (
    NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'updated_at', now)
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""
)

# KEYS: job, segments. ARGV: index, checkpoint json.  A late checkpoint of a
# finished job inherits the record's TTL instead of living forever.
SAVE_SEGMENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""

RENEW_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

# KEYS: job. ARGV: attempt json, cap.  Appends to the record's ``callbacks``
# list, keeping the newest ``cap``; never touches status or updated_at, and
# never brings back a record that is gone.
RECORD_CALLBACK_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], 'callbacks')
local list = {}
if raw and raw ~= '' then list = cjson.decode(raw) end
table.insert(list, cjson.decode(ARGV[1]))
local cap = tonumber(ARGV[2])
while #list > cap do table.remove(list, 1) end
redis.call('HSET', KEYS[1], 'callbacks', cjson.encode(list))
return 1
"""
