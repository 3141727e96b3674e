-- Token buckets, prepended to the admit and settle scripts (one definition
-- for both): a bucket is one string "<level> <at_ms>" (read with the
-- script's other keys in one MGET, written with SET … PX); absent or
-- unreadable means full. Mirrors crosslogic_core::limits::Bucket's refill.

-- Redis's clock in ms (all gateways share it).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The level of a bucket stored as `st` (what GET or MGET gave for its key),
-- refilled up to `now` (ms).
local function bucket_level_of(st, cap, now)
  local level, at
  if st then
    local sp = string.find(st, ' ', 1, true)
    if sp then level, at = tonumber(string.sub(st, 1, sp - 1)), tonumber(string.sub(st, sp + 1)) end
  end
  if level == nil or at == nil then return cap end
  return math.min(cap, level + math.max(0, now - at) * cap / 60000)
end

-- Stores `level` as of `now`; returns the level as written.
local function bucket_store(key, level, now)
  local l = tostring(level)
  redis.call('SET', key, l .. ' ' .. now, 'PX', 120000)
  return l
end
