-- The Redis limit store's one script: settles a batch of finished requests,
-- then admits a batch of new ones, in that order, atomically. Each
-- admission is all-or-nothing on its own: every limit of its plan passes
-- and is charged, or nothing of it changes. Mirrors
-- crosslogic_core::limits::Bucket (take, settle). Time comes from Redis
-- (TIME), so all gateways share one clock.
--
-- Every key is read at most once and written at most once per call, however
-- many requests of the batch share it: the state lives in the tables below
-- while the batch runs, and is written back at the end. Under load one call
-- carries dozens of requests of the same few scopes, so Redis's work per
-- request is about one ZADD and one ZREM.
--
-- Stored values: a token bucket is a string "<level> <at_ms>" (absent or
-- unreadable: full), expiring 2 min after its last write; a concurrency
-- scope is a sorted set of leases (member request_id, score expiry ms); a
-- daily counter is an integer (absent: 0).
--
-- ARGV: lease_ms, then
--   the settlement count, then per settlement: request_id, nb, ns,
--     has_daily, refund (reserved - actual tokens), nb x (capacity)
--   the admission count, then per admission: request_id, nb, ns,
--     has_daily, nb x (capacity, cost), ns x (limit),
--     [daily quota, daily cost, ms to the day's end]
-- KEYS: per settlement, its nb token buckets, ns concurrency sets, daily
--   counter (if any); then per admission, its nb buckets (requests and
--   tokens), ns concurrency sets, daily counter (if any).
-- Returns one reply per admission: {"1", level_1, ..., level_nb} or
--   {"0", index of the refusing limit (1-based, in plan order),
--   retry_after_ms (-1: never)}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local ki, ai = 1, 1
local function key()
  ki = ki + 1
  return KEYS[ki - 1]
end
local function num()
  ai = ai + 1
  return tonumber(ARGV[ai - 1])
end
local function str()
  ai = ai + 1
  return ARGV[ai - 1]
end

-- Pass 1: parse both batches; note the string keys to read.
local reads, wanted = {}, {}
local function want(k)
  if not wanted[k] then
    wanted[k] = true
    reads[#reads + 1] = k
  end
end
local lease = num()
local settles = {}
for s = 1, num() do
  local rid, nb, ns, hd, refund = str(), num(), num(), num(), num()
  local r = {rid = rid, refund = refund, b = {}, s = {}}
  for i = 1, nb do
    r.b[i] = {k = key()}
    if refund ~= 0 then want(r.b[i].k) end
  end
  for j = 1, ns do r.s[j] = key() end
  if hd == 1 then
    r.d = key()
    if refund ~= 0 then want(r.d) end
  end
  for i = 1, nb do r.b[i].cap = num() end
  settles[s] = r
end
local admits = {}
for a = 1, num() do
  local rid, nb, ns, hd = str(), num(), num(), num()
  local r = {rid = rid, b = {}, s = {}}
  for i = 1, nb do
    r.b[i] = {k = key()}
    want(r.b[i].k)
  end
  for j = 1, ns do r.s[j] = {k = key()} end
  if hd == 1 then
    r.d = {k = key()}
    want(r.d.k)
  end
  for i = 1, nb do r.b[i].cap, r.b[i].cost = num(), num() end
  for j = 1, ns do r.s[j].limit = num() end
  if hd == 1 then r.d.quota, r.d.cost, r.d.ttl = num(), num(), num() end
  admits[a] = r
end

-- Every string key in one read.
local stored = {}
if #reads > 0 then
  local vals = redis.call('MGET', unpack(reads))
  for i, k in ipairs(reads) do stored[k] = vals[i] end
end

-- Token buckets: level as of `now`, once a request of the batch used it.
local level, dirty = {}, {}
local function level_of(k, cap)
  local l = level[k]
  if l == nil then
    local st = stored[k]
    if st then
      local sp = string.find(st, ' ', 1, true)
      if sp then
        local v, at = tonumber(string.sub(st, 1, sp - 1)), tonumber(string.sub(st, sp + 1))
        if v ~= nil and at ~= nil then l = v + math.max(0, now - at) * cap / 60000 end
      end
    end
    if l == nil then l = cap end
  end
  return math.min(cap, l)
end

-- Daily counters: value and whether the key exists now; `fresh` holds the
-- expiry of a counter this call (re)creates.
local used, exists, fresh, ddirty = {}, {}, {}, {}
local function daily(k)
  if used[k] == nil then
    used[k] = tonumber(stored[k] or '0') or 0
    exists[k] = stored[k] ~= nil and stored[k] ~= false
  end
  return used[k]
end

-- Concurrency sets: leases counted once, released and added in one call
-- per key.
local count, adds, added = {}, {}, {}

-- Settlements: buckets get back (or pay) the difference between the
-- reservation and the actual tokens; slots are released; the daily counter
-- is corrected (one that would drop to 0 or below is deleted; one this
-- recreates — a request that ran past its day's expiry — outlives its day,
-- then expires).
local releases, rkeys = {}, {}
for _, r in ipairs(settles) do
  if r.refund ~= 0 then
    for _, b in ipairs(r.b) do
      level[b.k] = math.min(b.cap, level_of(b.k, b.cap) + r.refund)
      dirty[b.k] = true
    end
    if r.d then
      local k = r.d
      local u = daily(k) - r.refund
      if u <= 0 then
        used[k], exists[k] = 0, false
      else
        if not exists[k] then fresh[k] = 90000000 end
        used[k], exists[k] = u, true
      end
      ddirty[k] = true
    end
  end
  for _, k in ipairs(r.s) do
    if not releases[k] then
      releases[k] = {}
      rkeys[#rkeys + 1] = k
    end
    table.insert(releases[k], r.rid)
  end
end
for _, k in ipairs(rkeys) do redis.call('ZREM', k, unpack(releases[k])) end

local function slots_in_use(k)
  if count[k] == nil then count[k] = redis.call('ZCARD', k) + (added[k] or 0) end
  return count[k]
end

-- Admissions, in order.
local out = {}
for a, r in ipairs(admits) do
  local refusal
  local levels = {}
  for i, b in ipairs(r.b) do
    local l = level_of(b.k, b.cap)
    if b.cost > b.cap then refusal = {'0', tostring(i), '-1'} break end
    if l < b.cost then
      refusal = {'0', tostring(i), tostring(math.ceil((b.cost - l) * 60000 / b.cap))}
      break
    end
    levels[i] = l - b.cost
  end
  if not refusal then
    local nb = #r.b
    for j, s in ipairs(r.s) do
      -- Leases are removed when settled; expired ones (of a gateway that
      -- died) are swept only when they could make the difference.
      if slots_in_use(s.k) >= s.limit then
        redis.call('ZREMRANGEBYSCORE', s.k, '-inf', now)
        count[s.k] = nil
        if slots_in_use(s.k) >= s.limit then
          refusal = {'0', tostring(nb + j), '1000'}
          break
        end
      end
    end
  end
  if not refusal and r.d then
    local d = r.d
    local idx = tostring(#r.b + #r.s + 1)
    if d.cost > d.quota then
      refusal = {'0', idx, '-1'}
    elseif daily(d.k) + d.cost > d.quota then
      refusal = {'0', idx, tostring(d.ttl)}
    end
  end
  if refusal then
    out[a] = refusal
  else
    local reply = {'1'}
    for i, b in ipairs(r.b) do
      level[b.k] = levels[i]
      dirty[b.k] = true
      reply[i + 1] = tostring(levels[i])
    end
    for _, s in ipairs(r.s) do
      local n = slots_in_use(s.k)
      local l = adds[s.k] or {}
      adds[s.k] = l
      l[#l + 1] = now + lease
      l[#l + 1] = r.rid
      added[s.k] = (added[s.k] or 0) + 1
      count[s.k] = n + 1
    end
    if r.d then
      local k = r.d.k
      -- The day's first charge sets its expiry (an hour after the day ends).
      if not exists[k] then fresh[k] = r.d.ttl + 3600000 end
      used[k], exists[k] = daily(k) + r.d.cost, true
      ddirty[k] = true
    end
    out[a] = reply
  end
end

-- Write back.
for k in pairs(dirty) do redis.call('SET', k, tostring(level[k]) .. ' ' .. now, 'PX', 120000) end
for k, l in pairs(adds) do
  redis.call('ZADD', k, unpack(l))
  redis.call('PEXPIRE', k, lease * 2)
end
for k in pairs(ddirty) do
  if not exists[k] then
    if stored[k] then redis.call('DEL', k) end
  elseif fresh[k] then
    redis.call('SET', k, used[k], 'PX', fresh[k])
  else
    redis.call('SET', k, used[k], 'KEEPTTL')
  end
end
return out
