-- Claim the rebuild lock and a generation number never used before (above the live one even if the counter was
-- lost). KEYS[1]: the global generation key; the lock and the counter share its hash tag. ARGV[1]: the globals'
-- key prefix, ARGV[2]: lock seconds, ARGV[3]: the lock's owner token. Returns the generation, or false when
-- another rebuild holds the lock.
local prefix = ARGV[1]
local live = tonumber(redis.call('GET', KEYS[1]) or '0')
local generation = redis.call('INCR', prefix .. 'counter')
if generation <= live then
  generation = live + 1
  redis.call('SET', prefix .. 'counter', generation)
end
if redis.call('SET', prefix .. 'building', generation .. ':' .. ARGV[3], 'NX', 'EX', ARGV[2]) then
  return generation
end
return false
