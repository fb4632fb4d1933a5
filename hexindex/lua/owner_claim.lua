-- An owner's areas waiting to be indexed (one slot per owner). KEYS[1]: the owner's set. ARGV[1]: at most this many
-- areas at once, then area ids. Adds them, or changes nothing and returns the error INDEXBUSY when that would take
-- the owner past its limit: until the worker catches up, one owner cannot crowd lookups off the index. Returns the
-- ids that were not in the set yet (to take back if the registration fails further on).
local adding = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then adding[#adding + 1] = ARGV[i] end
end
if redis.call('SCARD', KEYS[1]) + #adding > tonumber(ARGV[1]) then
  return redis.error_reply('INDEXBUSY too many areas of this owner wait to be indexed')
end
if #adding > 0 then redis.call('SADD', KEYS[1], unpack(adding)) end
return adding
