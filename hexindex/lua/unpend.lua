-- Clear pending registrations of areas whose change token is still the one read before their data was (compare
-- and set: a change registered since keeps its area pending). ARGV: pairs (area id, expected token).
-- Returns the ids cleared.
local cleared = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if (redis.call('HGET', 'hx:pending', id) or '') == ARGV[i + 1] then
    local cells = redis.call('HGET', 'hx:pcells', id)
    if cells then
      for j = 1, #cells, 8 do
        redis.call('SREM', 'hx:p:' .. string.sub(cells, j, j + 7), id)
      end
    end
    redis.call('SREM', 'hx:p:all', id)
    redis.call('HDEL', 'hx:pcells', id)
    redis.call('HDEL', 'hx:pending', id)
    local owner = redis.call('HGET', 'hx:pown', id)
    if owner then
      redis.call('SREM', 'hx:po:' .. owner, id)
      redis.call('HDEL', 'hx:pown', id)
    end
    cleared[#cleared + 1] = id
  end
end
return cleared
