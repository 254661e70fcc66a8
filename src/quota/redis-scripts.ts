// The quota scripts Redis runs: one admission and one settlement per request, each atomic and one
// round trip whatever the number of rules. Same arithmetic as MemoryQuotaStore (quota-store.ts).
// Time comes from the caller (ARGV), not Redis TIME, so both stores agree in tests; replica clocks
// must be NTP-synced (skew only shifts bucket refills by the skew).
//
// ARGV: now, lease id, then four values per key: algo (b|w|l), limit, cost (delta for settle),
// and periodMs (b) | window end unix ms (w) | lease ttl ms (l).
// Lua numbers are doubles: integers are exact to 2^53 (9e15 nano-dollars = $9M per counter).

export const ADMIT_SCRIPT = `
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local n = #KEYS
local before = {}
local refused = 0
local retry_at = -1
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local algo = ARGV[b + 1]
  local limit = tonumber(ARGV[b + 2])
  local cost = tonumber(ARGV[b + 3])
  local param = tonumber(ARGV[b + 4])
  local key = KEYS[i]
  local v
  if algo == 'b' then
    local st = redis.call('HMGET', key, 'l', 't')
    if st[1] then
      local elapsed = now - tonumber(st[2])
      if elapsed < 0 then elapsed = 0 end
      v = math.min(limit, tonumber(st[1]) + elapsed * limit / param)
    else
      v = limit
    end
    if refused == 0 and v < cost then
      refused = i
      if cost <= limit then retry_at = now + math.ceil((cost - v) * param / limit) end
    end
  elseif algo == 'w' then
    v = tonumber(redis.call('GET', key) or '0')
    if refused == 0 and v + cost > limit then
      refused = i
      if cost <= limit then retry_at = param end
    end
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    v = redis.call('ZCARD', key)
    if refused == 0 and v + 1 > limit then
      refused = i
      retry_at = now + 1000
    end
  end
  before[i] = v
end
local out = { refused, retry_at }
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local algo = ARGV[b + 1]
  local limit = tonumber(ARGV[b + 2])
  local cost = tonumber(ARGV[b + 3])
  local param = tonumber(ARGV[b + 4])
  local key = KEYS[i]
  local v = before[i]
  local remaining, reset_at
  if algo == 'b' then
    local level = v
    if refused == 0 then
      level = v - cost
      redis.call('HSET', key, 'l', tostring(level), 't', tostring(now))
      redis.call('PEXPIRE', key, math.ceil((limit - level) * param / limit) + 1000)
    end
    remaining = math.floor(level)
    reset_at = now + math.ceil((limit - level) * param / limit)
  elseif algo == 'w' then
    local used = v
    if refused == 0 then
      used = redis.call('INCRBY', key, cost)
      redis.call('PEXPIREAT', key, param + 3600000)
    end
    remaining = limit - used
    reset_at = param
  else
    local held = v
    if refused == 0 then
      redis.call('ZADD', key, now + param, lease)
      redis.call('PEXPIRE', key, param)
      held = redis.call('ZCARD', key)
    end
    remaining = limit - held
    reset_at = now
  end
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = reset_at
end
return out
`;

// Settle: ARGV now, lease id, number of adjusted keys, their four values each; then, when KEYS has
// one more key (the ledger hash), its expiry (unix ms) and field/amount pairs.
export const SETTLE_SCRIPT = `
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local n = tonumber(ARGV[3])
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local algo = ARGV[b + 1]
  local limit = tonumber(ARGV[b + 2])
  local delta = tonumber(ARGV[b + 3])
  local param = tonumber(ARGV[b + 4])
  local key = KEYS[i]
  if algo == 'b' then
    if delta ~= 0 then
      local st = redis.call('HMGET', key, 'l', 't')
      local v = limit
      if st[1] then
        local elapsed = now - tonumber(st[2])
        if elapsed < 0 then elapsed = 0 end
        v = math.min(limit, tonumber(st[1]) + elapsed * limit / param)
      end
      local level = math.min(limit, v - delta)
      redis.call('HSET', key, 'l', tostring(level), 't', tostring(now))
      redis.call('PEXPIRE', key, math.ceil((limit - level) * param / limit) + 1000)
    end
  elseif algo == 'w' then
    if delta ~= 0 and redis.call('EXISTS', key) == 1 then
      local used = redis.call('INCRBY', key, delta)
      if used < 0 then redis.call('SET', key, 0, 'KEEPTTL') end
    end
  else
    redis.call('ZREM', key, lease)
  end
end
if #KEYS > n then
  local key = KEYS[n + 1]
  local a = 3 + n * 4 + 1
  local expires_at = tonumber(ARGV[a])
  for j = a + 1, #ARGV, 2 do
    redis.call('HINCRBY', key, ARGV[j], tonumber(ARGV[j + 1]))
  end
  redis.call('PEXPIREAT', key, expires_at)
end
return 1
`;
