-- Register areas as pending in one bucket (all keys share the bucket's hash tag: one slot, one node). Until an
-- area is made live again, lookups in this bucket ignore its records and check it in PostGIS.
-- KEYS[1]: the bucket's pending hash (area -> change token). ARGV[1]: the bucket's key prefix ("hx:{hx17}:"),
-- ARGV[2]: the change token, then pairs (area id, 8-byte cells concatenated | 'all'). Returns pairs (area id,
-- number of cells newly registered here). An area registered again before it was made live keeps one copy of
-- each cell: pcells lists a cell only when SADD added the area to that cell's set.
local prefix, token = ARGV[1], ARGV[2]
local pcells, counts = prefix .. 'pcells', {}
for i = 3, #ARGV, 2 do
  local id, cells = ARGV[i], ARGV[i + 1]
  redis.call('HSET', KEYS[1], id, token)
  if cells == 'all' then
    redis.call('SADD', prefix .. 'p:all', id)
  else
    local added = {}
    for j = 1, #cells, 8 do
      local cell = string.sub(cells, j, j + 7)
      if redis.call('SADD', prefix .. 'p:' .. cell, id) == 1 then
        added[#added + 1] = cell
      end
    end
    if #added > 0 then
      redis.call('HSET', pcells, id, (redis.call('HGET', pcells, id) or '') .. table.concat(added))
    end
    counts[#counts + 1] = id
    counts[#counts + 1] = #added
  end
end
return counts
