-- Cached lookup results of areas, from the live generation. ARGV: area ids.
-- Returns false when no generation is live; else {generation, values} (false where absent).
local generation = redis.call('GET', 'hx:gen')
if not generation then
  return false
end
return {generation, redis.call('HMGET', 'hx:' .. generation .. ':pay', unpack(ARGV))}
