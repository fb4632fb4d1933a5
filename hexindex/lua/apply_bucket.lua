-- Make one area live in one bucket of one generation, or take it out, atomically (one slot): replace its records in
-- the bucket's anchor hashes with the new ones, its placements and its cached result; then, if asked and its token
-- here is the expected one, clear its pending registration here, so lookups here trust the new records.
-- KEYS[1]: the bucket's placements hash of the generation (area -> placements, 24 bytes each: the anchor's 15 hex
-- characters and the 9-byte field). ARGV[1]: the bucket's key prefix, ARGV[2]: the generation, ARGV[3]: the
-- generation being rebuilt or '', ARGV[4]: area id, ARGV[5]: the expected change token ('*': do not check; '':
-- only while the area is not pending here), ARGV[6]: 'p' to clear the pending registration, ARGV[7]: the cached
-- result ('' when the area keeps no records here), ARGV[8..]: triples (anchor, field, record) of the new records.
-- Returns {1, cleared} when applied (cleared: 1 if the registration here was cleared), {0, 0} when the area was
-- registered here again since (its build is stale: a newer one will come).
local prefix, generation, building, id, expected = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local gprefix = prefix .. generation .. ':'
local token = redis.call('HGET', prefix .. 'pending', id)
if expected ~= '*' and token and token ~= expected then
  return {0, 0}
end

-- Records are sorted by area id (4 bytes big-endian at the start of each record): binary search.
local key_id = tonumber(id)
local function locate(blob, size)
  local low, high = 0, math.floor(#blob / size) - 1
  while low <= high do
    local middle = math.floor((low + high) / 2)
    local value = struct.unpack('>I4', blob, middle * size + 1)
    if value == key_id then
      return middle, true
    elseif value < key_id then
      low = middle + 1
    else
      high = middle - 1
    end
  end
  return low, false
end
local function put(anchor, field, record)
  local key = gprefix .. 'c:' .. anchor
  local size = string.sub(field, -1) == 'b' and 24 or 8
  local blob = redis.call('HGET', key, field) or ''
  local at, found = locate(blob, size)
  if record ~= '' or found then
    blob = string.sub(blob, 1, at * size) .. record .. string.sub(blob, (at + (found and 1 or 0)) * size + 1)
    if blob == '' then redis.call('HDEL', key, field) else redis.call('HSET', key, field, blob) end
  end
end

local new, placements = {}, {}
for i = 8, #ARGV, 3 do
  local placement = ARGV[i] .. ARGV[i + 1]
  new[placement] = true
  placements[#placements + 1] = placement
end
local old = redis.call('HGET', KEYS[1], id) or ''
for j = 1, #old, 24 do
  local placement = string.sub(old, j, j + 23)
  if not new[placement] then put(string.sub(placement, 1, 15), string.sub(placement, 16), '') end
end
for i = 8, #ARGV, 3 do put(ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
if #placements > 0 then
  redis.call('HSET', KEYS[1], id, table.concat(placements))
  redis.call('HSET', gprefix .. 'pay', id, ARGV[7])
else
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', gprefix .. 'pay', id)
end

local cleared = 0
-- Only in a bucket whose lookups read this generation: elsewhere (a rebuild switching buckets) the area stays
-- pending until a build for the new generation clears it.
if ARGV[6] == 'p' and token and redis.call('GET', prefix .. 'gen') == generation then
  local cells = redis.call('HGET', prefix .. 'pcells', id)
  if cells then
    for j = 1, #cells, 8 do redis.call('SREM', prefix .. 'p:' .. string.sub(cells, j, j + 7), id) end
  end
  redis.call('SREM', prefix .. 'p:all', id)
  redis.call('HDEL', prefix .. 'pcells', id)
  redis.call('HDEL', prefix .. 'pending', id)
  cleared = 1
end
if building ~= '' and building ~= generation then
  redis.call('SADD', prefix .. 'dirty:' .. building, id)
end
return {1, cleared}
