-- Admit one sign-in attempt, or say how long it must wait. Checked and charged in one step, so parallel attempts
-- cannot all slip through before any of them is counted.
-- KEYS: the counters the attempt is charged to, sharing one hash tag (one Redis Cluster slot). Each is a hash:
-- n (attempts admitted and not followed by a success), last (when the latest was admitted), known (1 on a
-- (username, address) counter once that address signed in as that username).
-- ARGV[1] now (seconds), ARGV[2] seconds a counter is kept after its latest attempt, then per key three values:
-- free attempts, longest wait (seconds), and 1 if a `known` mark on KEYS[1] waives that key.
-- Once a counter holds n >= free, the next attempt waits 2^(n - free) seconds after the latest, at most the longest
-- wait. Returns 0 having charged every key, or the whole seconds still to wait having charged none.
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local known = redis.call('HGET', KEYS[1], 'known') == '1'
local wait = 0
for i, key in ipairs(KEYS) do
  local free, longest, waivable = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), ARGV[3 * i + 2] == '1'
  if not (known and waivable) then
    local state = redis.call('HMGET', key, 'n', 'last')
    local n, last = tonumber(state[1]) or 0, tonumber(state[2]) or 0
    if n >= free then
      local left = math.min(longest, 2 ^ (n - free)) - (now - last)
      if left > wait then
        wait = left
      end
    end
  end
end
if wait > 0 then
  return math.ceil(wait)
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'n', 1)
  redis.call('HSET', key, 'last', ARGV[1])
  if redis.call('TTL', key) < keep then
    redis.call('EXPIRE', key, keep)
  end
end
return 0
