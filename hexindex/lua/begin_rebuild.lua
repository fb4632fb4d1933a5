-- Claim the rebuild lock and a generation number never used before (above the live one even if the counter was
-- lost). ARGV[1]: lock seconds. Returns the generation, or false when another rebuild holds the lock.
local live = tonumber(redis.call('GET', 'hx:gen') or '0')
local generation = redis.call('INCR', 'hx:gen:counter')
if generation <= live then
  generation = live + 1
  redis.call('SET', 'hx:gen:counter', generation)
end
if redis.call('SET', 'hx:building', generation, 'NX', 'EX', ARGV[1]) then
  return generation
end
return false
