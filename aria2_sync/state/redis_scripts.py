"""The Lua scripts of :class:`~aria2_sync.state.redis.RedisStore`: each read-modify-write step
of the store is one script, which Redis runs atomically (no other command runs in between).

Fields hold JSON text (``null``, ``"cancelled"``, ``true``): the scripts compare that text.
Key names are built from the prefix inside the scripts (one server, not Redis Cluster).
"""

from __future__ import annotations

__all__ = ["CLAIM", "FORGET", "READ", "RECORD_FAILURE", "RELEASE", "UPDATE"]

# Shared by the scripts: the daemon GIDs of row KEYS[1] other than its handle.
ALIASES = """
local function aliases(row, gid)
  local out = {}
  local cur = redis.call('HGET', row, 'current_gid')
  if cur then local g = cjson.decode(cur); if g ~= gid then out[#out + 1] = g end end
  local dg = redis.call('HGET', row, 'daemon_gids')
  if dg then
    for _, g in ipairs(cjson.decode(dg)) do if g ~= gid then out[#out + 1] = g end end
  end
  return out
end
local function batch_key(prefix, row)
  local b = redis.call('HGET', row, 'batch_id')
  if b and b ~= 'null' then return prefix .. 'b:' .. cjson.decode(b) end
  return nil
end
local function is_open(value) return value == false or value == 'null' end
"""

# ARGV: prefix, gid, finished_ttl_ms, then field, json pairs.
UPDATE = (
    ALIASES
    + """
local prefix, gid, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local row = prefix .. 'd:' .. gid
if redis.call('EXISTS', row) == 0 then return 0 end
local was_open = is_open(redis.call('HGET', row, 'outcome'))
for i = 4, #ARGV, 2 do redis.call('HSET', row, ARGV[i], ARGV[i + 1]) end
local names = aliases(row, gid)
for _, g in ipairs(names) do redis.call('SET', prefix .. 'alias:' .. g, gid, 'KEEPTTL') end
local now_open = is_open(redis.call('HGET', row, 'outcome'))
local bkey = batch_key(prefix, row)
if bkey and redis.call('EXISTS', bkey) == 0 then bkey = nil end
if now_open then
  if not was_open then
    redis.call('SADD', prefix .. 'unfinished', gid)
    redis.call('PERSIST', row)
    for _, g in ipairs(names) do redis.call('PERSIST', prefix .. 'alias:' .. g) end
    if bkey then redis.call('HINCRBY', bkey, 'open', 1); redis.call('PERSIST', bkey) end
  end
else
  if was_open then
    redis.call('SREM', prefix .. 'unfinished', gid)
    if bkey and redis.call('HINCRBY', bkey, 'open', -1) <= 0 and ttl > 0 then
      redis.call('PEXPIRE', bkey, ttl)
    end
  end
  if ttl > 0 then
    redis.call('PEXPIRE', row, ttl)
    for _, g in ipairs(names) do redis.call('PEXPIRE', prefix .. 'alias:' .. g, ttl) end
  end
end
return 1
"""
)

# KEYS: row, lease. ARGV: holder, lease_ms, run.
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
local v = redis.call('HMGET', KEYS[1], 'run', 'outcome', 'cancelled')
if v[1] ~= ARGV[3] or v[2] == '"cancelled"' or v[3] == 'true' then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local ms = tonumber(ARGV[2])
if ms > 0 then redis.call('SET', KEYS[2], ARGV[1], 'PX', ms) end
return 1
"""

# KEYS: lease keys. ARGV: holder.
RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
"""

# KEYS: row. ARGV: run, the attempt's JSON. The history is JSON text: appended as text (exact).
RECORD_FAILURE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local v = redis.call('HMGET', KEYS[1], 'run', 'failed_run', 'attempts')
local run, failed, attempts = tonumber(v[1]), tonumber(v[2]), v[3] or '[]'
if run == tonumber(ARGV[1]) and failed < run then
  if attempts == '[]' then
    attempts = '[' .. ARGV[2] .. ']'
  else
    attempts = string.sub(attempts, 1, -2) .. ', ' .. ARGV[2] .. ']'
  end
  redis.call('HSET', KEYS[1], 'failed_run', ARGV[1], 'attempts', attempts, 'gave_up', 'null')
end
return attempts
"""

# ARGV: prefix, finished_ttl_ms, n, then n (gid, run or '') pairs, then batch ids.
FORGET = (
    ALIASES
    + """
local prefix, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 0, n - 1 do
  local gid, run = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local row = prefix .. 'd:' .. gid
  local v = redis.call('HMGET', row, 'run', 'outcome')
  if redis.call('EXISTS', row) == 1 and (run == '' or (v[1] == run and not is_open(v[2]))) then
    local bkey = batch_key(prefix, row)
    if is_open(v[2]) and bkey and redis.call('EXISTS', bkey) == 1 then
      if redis.call('HINCRBY', bkey, 'open', -1) <= 0 and ttl > 0 then
        redis.call('PEXPIRE', bkey, ttl)
      end
    end
    for _, g in ipairs(aliases(row, gid)) do redis.call('DEL', prefix .. 'alias:' .. g) end
    redis.call('SREM', prefix .. 'unfinished', gid)
    redis.call('DEL', row, prefix .. 'lease:' .. gid)
  end
end
for i = 4 + 2 * n, #ARGV do
  local bkey = prefix .. 'b:' .. ARGV[i]
  local gids = redis.call('HGET', bkey, 'gids')
  local kept = false
  if gids then
    for _, g in ipairs(cjson.decode(gids)) do
      if redis.call('EXISTS', prefix .. 'd:' .. g) == 1 then kept = true; break end
    end
  end
  if not kept then redis.call('DEL', bkey) end
end
return 1
"""
)

# ARGV: prefix, then GIDs. One JSON text: [meta exists (1/0), row or null, ...]. Each field is
# already JSON, so a row is its fields joined: one reply and one json.loads for many rows,
# instead of two replies and a json.loads per field.
READ = """
local prefix, out = ARGV[1], {}
out[1] = tostring(redis.call('EXISTS', prefix .. 'meta'))
for i = 2, #ARGV do
  local h = redis.call('HGETALL', prefix .. 'd:' .. ARGV[i])
  if #h == 0 then
    out[#out + 1] = 'null'
  else
    local parts = {}
    for j = 1, #h, 2 do parts[#parts + 1] = '"' .. h[j] .. '":' .. h[j + 1] end
    out[#out + 1] = '{' .. table.concat(parts, ',') .. '}'
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""
