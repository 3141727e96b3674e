-- Settles a batch of requests: for each, token buckets get back (or pay)
-- the difference between the reservation and the actual tokens, slots are
-- released, the daily counter is corrected. Mirrors
-- crosslogic_core::limits::Bucket::settle. Prepended to the admit script
-- (an admission carries the settlements its gateway queued since the last
-- call: one round trip for both) and run alone by the settle script.
--
-- KEYS from k: per request, its nb token buckets, then its ns concurrency
--              sets, then its daily counter (if any)
-- ARGV from a: count, then per request: request_id, nb, ns, has_daily,
--              refund, nb x (capacity)
-- Returns the KEYS and ARGV positions after the batch.
-- bucket_level_of / bucket_store: bucket.lua, prepended.
local function settle_batch(now, k, a)
  local count = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, count do
    local rid = ARGV[a]
    local nb, ns, hd = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local refund = tonumber(ARGV[a + 4])
    a = a + 5
    -- Nothing to give back or take: the bucket is left as it is (its
    -- refill is lazy).
    if refund ~= 0 and nb > 0 then
      local stored = redis.call('MGET', unpack(KEYS, k, k + nb - 1))
      for i = 0, nb - 1 do
        local cap = tonumber(ARGV[a + i])
        bucket_store(KEYS[k + i], math.min(cap, bucket_level_of(stored[i + 1], cap, now) + refund), now)
      end
    end
    a = a + nb
    k = k + nb
    for j = 0, ns - 1 do
      redis.call('ZREM', KEYS[k + j], rid)
    end
    k = k + ns
    if hd == 1 then
      if refund ~= 0 then
        -- An absent counter is 0: one that would drop to 0 or below is
        -- deleted. One this created (the day's key had expired: a request
        -- that ran past the day's end) outlives its day, then expires.
        local used = redis.call('DECRBY', KEYS[k], refund)
        if used <= 0 then
          redis.call('DEL', KEYS[k])
        elseif used == -refund then
          redis.call('PEXPIRE', KEYS[k], 90000000)
        end
      end
      k = k + 1
    end
  end
  return k, a
end
