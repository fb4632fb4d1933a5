-- Clear areas' pending registrations in one bucket (one slot) while their token here is still the given one (a
-- change registered since keeps its area pending). KEYS[1]: the bucket's pending hash. ARGV[1]: the bucket's key
-- prefix, then pairs (area id, expected token; '*' clears whatever it is). Returns the ids cleared.
local prefix, cleared = ARGV[1], {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], redis.call('HGET', KEYS[1], ARGV[i])
  if token and (ARGV[i + 1] == '*' or token == ARGV[i + 1]) then
    local cells = redis.call('HGET', prefix .. 'pcells', id)
    if cells then
      for j = 1, #cells, 8 do redis.call('SREM', prefix .. 'p:' .. string.sub(cells, j, j + 7), id) end
    end
    redis.call('SREM', prefix .. 'p:all', id)
    redis.call('HDEL', prefix .. 'pcells', id)
    redis.call('HDEL', KEYS[1], id)
    cleared[#cleared + 1] = id
  end
end
return cleared
