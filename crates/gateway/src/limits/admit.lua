-- Admits one request against every limit of its plan, atomically: either all
-- limits pass and are charged, or nothing changes. Mirrors
-- crosslogic_core::limits::Bucket::take. Time comes from Redis (TIME), so all
-- gateways share one clock.
--
-- KEYS: nb token buckets, then ns concurrency sets, then the daily counter (if any)
-- ARGV: request_id, lease_ms, nb, ns, has_daily,
--       nb x (capacity, cost), ns x (limit), [daily quota, daily cost, daily ttl_ms]
-- Returns {"1", level_1, ..., level_nb} or {"0", index_of_refusing_key, retry_after_ms (-1: never)}
-- bucket_level / bucket_store: bucket.lua, prepended.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid = ARGV[1]
local lease = tonumber(ARGV[2])
local nb, ns, hd = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local p = 6
local levels = {}
for i = 1, nb do
  local cap, cost = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
  p = p + 2
  local level = bucket_level(KEYS[i], cap, now)
  if cost > cap then return {'0', tostring(i), '-1'} end
  if level < cost then return {'0', tostring(i), tostring(math.ceil((cost - level) * 60000 / cap))} end
  levels[i] = level - cost
end
for j = 1, ns do
  local limit = tonumber(ARGV[p])
  p = p + 1
  local k = KEYS[nb + j]
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if redis.call('ZCARD', k) >= limit then return {'0', tostring(nb + j), '1000'} end
end
local dcost, dttl
if hd == 1 then
  local quota = tonumber(ARGV[p])
  dcost, dttl = tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
  local used = tonumber(redis.call('GET', KEYS[nb + ns + 1]) or '0')
  if dcost > quota then return {'0', tostring(nb + ns + 1), '-1'} end
  if used + dcost > quota then return {'0', tostring(nb + ns + 1), tostring(dttl)} end
end
local out = {'1'}
for i = 1, nb do
  out[#out + 1] = bucket_store(KEYS[i], levels[i], now)
end
for j = 1, ns do
  redis.call('ZADD', KEYS[nb + j], now + lease, rid)
  redis.call('PEXPIRE', KEYS[nb + j], lease * 2)
end
if hd == 1 then
  redis.call('INCRBY', KEYS[nb + ns + 1], dcost)
  redis.call('PEXPIRE', KEYS[nb + ns + 1], dttl + 3600000)
end
return out
