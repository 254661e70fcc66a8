// The quota scripts Redis runs: one admission and one settlement per request, each atomic and one
// round trip whatever the number of rules. Same arithmetic as MemoryQuotaStore (quota-store.ts).
// Time comes from the caller (ARGV), not Redis TIME, so both stores agree in tests; replica clocks
// must be NTP-synced (skew only shifts bucket refills by the skew).
//
// ARGV: now, lease id, then four values per key: algo (b|w|l), limit, cost (delta for settle),
// and periodMs (b) | window end unix ms (w) | lease ttl ms (l).
// Lua numbers are doubles: integers are exact to 2^53 (9e15 nano-dollars = $9M per counter).

/** Shared by both scripts: reading a key's four values, and a bucket's level and write-back. */
const PRELUDE = `
local function spec(base, i)
  local b = base + (i - 1) * 4
  return ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
end
local function bucket_level(key, limit, period, now)
  local st = redis.call('HMGET', key, 'l', 't')
  if not st[1] then return limit end
  local elapsed = now - tonumber(st[2])
  if elapsed < 0 then elapsed = 0 end
  return math.min(limit, tonumber(st[1]) + elapsed * limit / period)
end
-- The key lives until the bucket would be full again: a missing key reads as full.
local function store_bucket(key, level, limit, period, now)
  redis.call('HSET', key, 'l', tostring(level), 't', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((limit - level) * period / limit) + 1000)
end
`;

export const ADMIT_SCRIPT = `${PRELUDE}
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local n = #KEYS
local specs = {}
local before = {}
local refused = 0
local retry_at = -1
for i = 1, n do
  local algo, limit, cost, param = spec(2, i)
  specs[i] = { algo, limit, cost, param }
  local key = KEYS[i]
  local v
  if algo == 'b' then
    v = bucket_level(key, limit, param, now)
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
  local algo, limit, cost, param = specs[i][1], specs[i][2], specs[i][3], specs[i][4]
  local key = KEYS[i]
  local v = before[i]
  local remaining, reset_at
  if algo == 'b' then
    local level = v
    if refused == 0 then
      level = v - cost
      store_bucket(key, level, limit, param, now)
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
export const SETTLE_SCRIPT = `${PRELUDE}
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local n = tonumber(ARGV[3])
for i = 1, n do
  local algo, limit, delta, param = spec(3, i)
  local key = KEYS[i]
  if algo == 'b' then
    if delta ~= 0 then
      store_bucket(key, math.min(limit, bucket_level(key, limit, param, now) - delta), limit, param, now)
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
