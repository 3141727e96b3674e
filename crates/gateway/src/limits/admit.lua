-- Settles the settlements carried along (settle.lua), then admits one
-- request against every limit of its plan, atomically: either all limits
-- pass and are charged, or nothing changes (the settlements stand either
-- way). Mirrors crosslogic_core::limits::Bucket::take. Time comes from
-- Redis (TIME), so all gateways share one clock.
--
-- KEYS: the settlements' keys (settle.lua), then nb token buckets, then ns
--       concurrency sets, then the daily counter (if any)
-- ARGV: the settlements (settle.lua; "0" for none), then request_id,
--       lease_ms, nb, ns, has_daily, nb x (capacity, cost), ns x (limit),
--       [daily quota, daily cost, daily ttl_ms]
-- Returns {"1", level_1, ..., level_nb} or {"0", index_of_refusing_limit
-- (1-based, in plan order), retry_after_ms (-1: never)}
local now = now_ms()
local k0, p = settle_batch(now, 1, 1)
k0 = k0 - 1
local rid = ARGV[p]
local lease = tonumber(ARGV[p + 1])
local nb, ns, hd = tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3]), tonumber(ARGV[p + 4])
p = p + 5
local dkey = KEYS[k0 + nb + ns + 1]
-- Every bucket and the daily counter in one read.
local reads = {}
for i = 1, nb do reads[i] = KEYS[k0 + i] end
if hd == 1 then reads[nb + 1] = dkey end
local stored = {}
if #reads > 0 then stored = redis.call('MGET', unpack(reads)) end
local levels = {}
for i = 1, nb do
  local cap, cost = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
  p = p + 2
  local level = bucket_level_of(stored[i], cap, now)
  if cost > cap then return {'0', tostring(i), '-1'} end
  if level < cost then return {'0', tostring(i), tostring(math.ceil((cost - level) * 60000 / cap))} end
  levels[i] = level - cost
end
for j = 1, ns do
  local limit = tonumber(ARGV[p])
  p = p + 1
  local k = KEYS[k0 + nb + j]
  -- Leases are removed when settled; expired ones (of a gateway that
  -- died) are swept only when they could make the difference.
  if redis.call('ZCARD', k) >= limit then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    if redis.call('ZCARD', k) >= limit then return {'0', tostring(nb + j), '1000'} end
  end
end
local dcost, dttl
if hd == 1 then
  local quota = tonumber(ARGV[p])
  dcost, dttl = tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
  local used = tonumber(stored[nb + 1] or '0')
  if dcost > quota then return {'0', tostring(nb + ns + 1), '-1'} end
  if used + dcost > quota then return {'0', tostring(nb + ns + 1), tostring(dttl)} end
end
local out = {'1'}
for i = 1, nb do
  out[#out + 1] = bucket_store(KEYS[k0 + i], levels[i], now)
end
for j = 1, ns do
  redis.call('ZADD', KEYS[k0 + nb + j], now + lease, rid)
  redis.call('PEXPIRE', KEYS[k0 + nb + j], lease * 2)
end
if hd == 1 then
  -- The day's first charge sets its expiry (an hour after the day ends).
  if redis.call('INCRBY', dkey, dcost) == dcost then redis.call('PEXPIRE', dkey, dttl + 3600000) end
end
return out
