-- Register areas as changed: until they are made live again, lookups ignore their records and check them in
-- PostGIS. Each area is registered at cells whose reach covers its old and new bounding boxes (so a lookup finds
-- it through its own chain), or everywhere ('all') when a box is too large for that.
-- ARGV[1]: now (unix seconds); ARGV[2]: the owner whose write this is ('' for staff and the system: no limits);
-- ARGV[3], ARGV[4]: that owner's limits, areas pending at once and cells per pending area; then pairs (area id,
-- 8-byte cells concatenated | 'all'). Returns the change token, or the error INDEXBUSY (nothing registered) when
-- the write would take the owner past a limit: until the worker catches up, one owner's writes cannot grow Redis,
-- nor make its areas enough of a crowd at a point to send lookups there to PostgreSQL.
-- An area registered again before it was made live keeps one copy of each cell: hx:pcells lists a cell only when
-- SADD added the area to that cell's set, so editing one area in a loop cannot grow Redis beyond its cells.
local owner, max_areas, max_cells = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if owner ~= '' then
  local owned = 'hx:po:' .. owner
  local adding = 0
  for i = 5, #ARGV, 2 do
    local id, cells = ARGV[i], ARGV[i + 1]
    if redis.call('SISMEMBER', owned, id) == 0 then
      adding = adding + 1
    end
    if cells ~= 'all' and redis.call('HSTRLEN', 'hx:pcells', id) + #cells > max_cells * 8 then
      return redis.error_reply('INDEXBUSY area ' .. id .. ' changed too often since it was last indexed')
    end
  end
  if redis.call('SCARD', owned) + adding > max_areas then
    return redis.error_reply('INDEXBUSY too many areas of this owner wait to be indexed')
  end
end
local token = redis.call('INCR', 'hx:seq') .. ':' .. ARGV[1]
for i = 5, #ARGV, 2 do
  local id, cells = ARGV[i], ARGV[i + 1]
  redis.call('HSET', 'hx:pending', id, token)
  if owner ~= '' then
    redis.call('SADD', 'hx:po:' .. owner, id)
    redis.call('HSET', 'hx:pown', id, owner)
  end
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
