-- Switch lookups to a rebuilt generation, unless areas changed while it was built are still to be copied into it.
-- ARGV[1]: the generation. Returns {1, previous generation or ''} when switched, {0} when areas are still to be
-- copied (see hx:dirty:<generation>), {-1} when the rebuild lost its lock.
local generation = ARGV[1]
if redis.call('GET', 'hx:building') ~= generation then
  return {-1}
end
if redis.call('SCARD', 'hx:dirty:' .. generation) > 0 then
  return {0}
end
local previous = redis.call('GET', 'hx:gen') or ''
redis.call('SET', 'hx:gen', generation)
redis.call('DEL', 'hx:building', 'hx:dirty:' .. generation)
return {1, previous}
