-- Settles one request: token buckets get back (or pay) the difference
-- between the reservation and the actual tokens, slots are released, the
-- daily counter is corrected. Mirrors crosslogic_core::limits::Bucket::settle.
--
-- KEYS: nb token buckets, then ns concurrency sets, then the daily counter (if any)
-- ARGV: request_id, nb, ns, has_daily, refund, nb x (capacity)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid = ARGV[1]
local nb, ns, hd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local refund = tonumber(ARGV[5])
for i = 1, nb do
  local cap = tonumber(ARGV[5 + i])
  local st = redis.call('HMGET', KEYS[i], 'l', 't')
  local level, at = tonumber(st[1]), tonumber(st[2])
  if level == nil or at == nil then level, at = cap, now end
  level = math.min(cap, math.min(cap, level + math.max(0, now - at) * cap / 60000) + refund)
  redis.call('HSET', KEYS[i], 'l', tostring(level), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[i], 120000)
end
for j = 1, ns do
  redis.call('ZREM', KEYS[nb + j], rid)
end
if hd == 1 and refund ~= 0 then
  local k = KEYS[nb + ns + 1]
  local used = tonumber(redis.call('GET', k) or '0')
  redis.call('SET', k, tostring(math.max(0, used - refund)), 'KEEPTTL')
end
return 1
