-- Register areas as changed: until they are made live again, lookups ignore their records and check them in
-- PostGIS. Each area is registered at cells whose reach covers its old and new bounding boxes (so a lookup finds
-- it through its own chain), or everywhere ('all') when a box is too large for that.
-- ARGV[1]: now (unix seconds); then pairs (area id, 8-byte cells concatenated | 'all'). Returns the change token.
-- An area registered again before it was made live keeps one copy of each cell: hx:pcells lists a cell only when
-- SADD added the area to that cell's set, so editing one area in a loop cannot grow Redis beyond its cells.
local token = redis.call('INCR', 'hx:seq') .. ':' .. ARGV[1]
for i = 2, #ARGV, 2 do
  local id, cells = ARGV[i], ARGV[i + 1]
  redis.call('HSET', 'hx:pending', id, token)
  if cells == 'all' then
    redis.call('SADD', 'hx:p:all', id)
  else
    local added = {}
    for j = 1, #cells, 8 do
      local cell = string.sub(cells, j, j + 7)
      if redis.call('SADD', 'hx:p:' .. cell, id) == 1 then
        added[#added + 1] = cell
      end
    end
    if #added > 0 then
      redis.call('HSET', 'hx:pcells', id, (redis.call('HGET', 'hx:pcells', id) or '') .. table.concat(added))
    end
  end
end
return token
