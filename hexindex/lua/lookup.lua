-- The lookup's one read: everything the index knows about a point, from the hash of the point's anchor cell.
-- ARGV[1]: the anchor (hex). ARGV[2]: the most pending areas worth listing. ARGV[3..]: the point's chain cells,
-- coarsest first, 8 bytes each.
-- Returns false when no generation is live; else {generation, records, pending}: `records` holds the values of
-- fields <cell>i and <cell>b for each chain cell in order (false where absent), `pending` the ids of areas
-- registered as changed at any chain cell or everywhere, or false when there are more than ARGV[2] of them.
-- No per-member work here: Redis answers in C.
local generation = redis.call('GET', 'hx:gen')
if not generation then
  return false
end
local fields, pending_keys = {}, {'hx:p:all'}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i] .. 'i'
  fields[#fields + 1] = ARGV[i] .. 'b'
  pending_keys[#pending_keys + 1] = 'hx:p:' .. ARGV[i]
end
local records = redis.call('HMGET', 'hx:' .. generation .. ':c:' .. ARGV[1], unpack(fields))
local waiting = 0
for _, key in ipairs(pending_keys) do
  waiting = waiting + redis.call('SCARD', key)
end
if waiting > tonumber(ARGV[2]) then
  return {generation, records, false}
end
return {generation, records, redis.call('SUNION', unpack(pending_keys))}
