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

# KEYS: job, segments, lease, leased, due, then one status index per status in ARGV order.
# ARGV: id, target, ttl, output json or '', error json or '', max attempts or '',
# index score or '', lease owner or '', progress json or '', lease ttl ms or '',
# 'none' if the attempt ending recorded no checkpoint or '',
# then per status: name, rank, terminal.
#
# A move: forward only (by rank), with its timestamps, output and error; an end
# starts the record's retention TTL.  The index score is the job's creation
# time as the indexes hold it (the caller knows it: no ZSCORE).
#
# The start of an attempt (with max attempts and a lease ttl): the owner first
# takes the job's lease as ACQUIRE_JOB_LEASE does (or takes back its own),
# unless the job is gone, succeeded or failed; then one attempt is counted
# (even if the job already runs, from an earlier attempt) unless the job ended
# or is out of attempts, and the job moves to running.  The progress given is
# written with the job's first attempt (it has no checkpoints).  A job never
# attempted and never given a token (the record's ``dispatch``) was never due:
# no ZREM of the due list.
#
# The end of an attempt (with a lease owner, no lease ttl): a move to an end
# also gives up that owner's lease, and a move to ``succeeded`` drops the
# checkpoints (the caller holds them, and deletes their objects); there are
# none to drop after a first attempt that recorded none ('none') under a
# lease held throughout.  Other moves write the progress given.
#
# Returns {1, previous status, created_at, now, attempt or false, lease given up (0/1)}
# when it moved, {2, current status, attempt, now} when it counted an attempt without
# moving, {3, current status, attempts} when out of attempts, {4, current status} when
# the lease is another's (nothing changed), or {0, current status or false}.
TRANSITION = (
    NOW
    + """
local cur, created, started, err, attempts, dispatch = unpack(redis.call(
  'HMGET', KEYS[1], 'status', 'created_at', 'started_at', 'error', 'attempts', 'dispatch'))
if not cur then return {0, false} end
local id, target, owner = ARGV[1], ARGV[2], ARGV[8]
local cur_rank, cur_idx, cur_terminal, to_rank, to_idx, terminal
for i = 0, (#ARGV - 11) / 3 - 1 do
  local name, rank, ends = ARGV[12 + 3 * i], tonumber(ARGV[13 + 3 * i]), ARGV[14 + 3 * i] == '1'
  if name == cur then cur_rank, cur_idx, cur_terminal = rank, KEYS[6 + i], ends end
  if name == target then to_rank, to_idx, terminal = rank, KEYS[6 + i], ends end
end
if not to_rank then return redis.error_reply('unknown status ' .. target) end
local starting = ARGV[10] ~= ''
if starting then
  if cur == 'succeeded' or cur == 'failed' then return {0, cur} end
  if not redis.call('SET', KEYS[3], owner, 'NX', 'PX', ARGV[10]) then
    if redis.call('GET', KEYS[3]) ~= owner then return {4, cur} end
    redis.call('PEXPIRE', KEYS[3], ARGV[10])
  end
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[4], ms + tonumber(ARGV[10]), id)
  if dispatch or tonumber(attempts or '0') > 0 then redis.call('ZREM', KEYS[5], id) end
end
-- One HSET of every field that changes.
local fields = {'updated_at', now}
local attempt = false
if ARGV[6] ~= '' then
  if cur_terminal then return {0, cur} end
  attempts = tonumber(attempts or '0')
  if attempts >= tonumber(ARGV[6]) then return {3, cur, attempts} end
  attempt = attempts + 1
  table.insert(fields, 'attempts'); table.insert(fields, attempt)
end
if ARGV[9] ~= '' and (not attempt or attempt == 1) then
  table.insert(fields, 'progress'); table.insert(fields, ARGV[9])
end
if cur_rank and to_rank <= cur_rank then
  if attempt then
    redis.call('HSET', KEYS[1], unpack(fields))
    return {2, cur, attempt, now}
  end
  return {0, cur}
end
local score = ARGV[7]
if score == '' then
  score = cur_idx and redis.call('ZSCORE', cur_idx, id)
  if not score then score = tonumber(created) * 1000 end
end
if cur_idx then redis.call('ZREM', cur_idx, id) end
redis.call('ZADD', to_idx, score, id)
table.insert(fields, 'status'); table.insert(fields, target)
if ARGV[4] ~= '' then table.insert(fields, 'output'); table.insert(fields, ARGV[4]) end
if ARGV[5] ~= '' then table.insert(fields, 'error'); table.insert(fields, ARGV[5]) end
if target == 'running' and not started then
  table.insert(fields, 'started_at'); table.insert(fields, now)
end
if terminal then table.insert(fields, 'finished_at'); table.insert(fields, now) end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[5] == '' and target == 'succeeded' and err then
  -- an error recorded by an earlier attempt is no longer the job's story
  redis.call('HDEL', KEYS[1], 'error')
end
local released = 0
if terminal then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  -- held throughout: a lease is only ever extended by its owner, never taken back
  local ours = owner ~= '' and not starting and redis.call('GET', KEYS[3]) == owner
  if owner ~= '' and target == 'succeeded' then
    if not (ours and ARGV[11] == 'none') then redis.call('DEL', KEYS[2]) end
  else
    redis.call('EXPIRE', KEYS[2], ARGV[3])
  end
  if ours then
    redis.call('DEL', KEYS[3])
    redis.call('ZREM', KEYS[4], id)
    released = 1
  end
end
return {1, cur, created or false, now, attempt, released}
"""
)

# KEYS: job. ARGV: field, value, ...  Never recreates an expired record: every
# record has ``updated_at`` (create writes every field of a Job), so an HSET that
# added every field it wrote found no record, and is undone at once (no EXISTS first).
UPDATE = (
    NOW
    + """
if redis.call('HSET', KEYS[1], 'updated_at', now, unpack(ARGV)) > #ARGV / 2 then
  redis.call('DEL', KEYS[1])
  return false
end
return now
"""
)

# Server time in whole milliseconds: the scores of the reapers' lists.
NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Job leases keep the reapers' lists (Keys.jobs_leased, Keys.jobs_due) true in
# the same step: a job an attempt runs is listed by its lease's expiry, a job
# between attempts by when its next one is due, and never in both.

# KEYS: lease, leased, due. ARGV: id, owner, ttl ms.
ACQUIRE_JOB_LEASE = (
    NOW_MS
    + """
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""
)

# KEYS: lease, leased, due. ARGV: id, owner, ttl ms.
RENEW_JOB_LEASE = (
    NOW_MS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""
)

# KEYS: lease, job, leased, due. ARGV: id, owner, look-again ms.  A job still
# running once its lease is given up had an attempt that decided nothing (it
# stopped on an error): it is due again after a while, not at once, so a bug
# that stops every attempt does not spin.
RELEASE_JOB_LEASE = (
    """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], 'status') == 'running' then
  -- the clock only when it is needed: a job that ended is not listed again
  """
    + NOW_MS
    + """
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
end
return 1
"""
)

# KEYS: lease, leased, due, job. ARGV: id, owner, delay ms, token.
# Gives the lease up and lists the job as due after its backoff; the new token
# (the record's ``dispatch``: read with the record, no command of its own) is
# carried by no message yet, so any older message (a redelivery) is dropped.
# Returns when the retry is due (epoch ms), or false if the lease is not owner's.
SCHEDULE_RETRY = (
    NOW_MS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local due = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[3], due, ARGV[1])
-- never a record of nothing but a token: one deleted meanwhile stays deleted
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HSET', KEYS[4], 'dispatch', ARGV[4]) end
return due
"""
)

# KEYS: due, leased. ARGV: limit.  Jobs whose next attempt is due, then jobs
# whose lease lapsed: one command for the reaper's every look.
DUE_JOBS = (
    NOW_MS
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, ARGV[1])
for _, id in ipairs(lapsed) do table.insert(ids, id) end
return ids
"""
)

# KEYS: job, lease, leased, due. ARGV: id, token, pickup ms.
# One reaper wins a due job: the new token (the record's ``dispatch``) becomes
# the only valid message, and the job is due again after the pickup time, in
# case that message is never taken.  A finished (or vanished) job leaves the
# lists; a held lease (of an earlier version, whose renewals do not list it) is
# listed by its expiry.  A canceled job is queued too: its next attempt only
# cleans its staging.
# Returns 'due' or 'lapsed', or false when there is nothing to queue.
CLAIM_DUE = (
    NOW_MS
    + """
local id = ARGV[1]
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'succeeded' or status == 'failed' then
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  return false
end
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZADD', KEYS[3], now + pttl, id)
  return false
end
local reason = false
local at = redis.call('ZSCORE', KEYS[4], id)
if at and tonumber(at) <= now then
  reason = 'due'
else
  at = redis.call('ZSCORE', KEYS[3], id)
  if at and tonumber(at) <= now then reason = 'lapsed' end
end
if not reason then return false end
redis.call('HSET', KEYS[1], 'dispatch', ARGV[2])
redis.call('ZREM', KEYS[3], id)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), id)
return reason
"""
)

# KEYS: leased, due, then the lease of each job in ARGV order. ARGV: job ids.
# Lists running jobs that neither list has (started by an earlier version) by
# their lease's expiry, or as lapsed now if they hold none.  Returns how many.
ADOPT_RUNNING = (
    NOW_MS
    + """
local added = 0
for i, id in ipairs(ARGV) do
  if not redis.call('ZSCORE', KEYS[1], id) and not redis.call('ZSCORE', KEYS[2], id) then
    local pttl = redis.call('PTTL', KEYS[2 + i])
    if pttl < 0 then pttl = 0 end
    redis.call('ZADD', KEYS[1], now + pttl, id)
    added = added + 1
  end
end
return added
"""
)

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
