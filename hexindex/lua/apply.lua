-- Make one area's index live in one generation, or forget it, atomically: edit its records in the anchor hashes,
-- then its state, versions and cached result.
-- ARGV[1] generation, ARGV[2] area id,
-- ARGV[3] expected change token ('' = not pending, '*' = do not check),
-- ARGV[4] expected state ('' = none): the state the caller computed its edits from,
-- ARGV[5] new state ('' = forget the area), ARGV[6] new versions, ARGV[7] new cached result,
-- ARGV[8] flags: 'p' clear the area's pending registrations, 'd' note the area for a rebuild in progress,
-- ARGV[9..] triples (anchor, field, record; '' = remove the area's record).
-- Returns 1 when applied, 0 when the token moved (changed again since), -1 when the state moved (retry).
local generation, id = ARGV[1], ARGV[2]
local prefix = 'hx:' .. generation
if ARGV[3] ~= '*' and (redis.call('HGET', 'hx:pending', id) or '') ~= ARGV[3] then
  return 0
end
if (redis.call('HGET', prefix .. ':a', id) or '') ~= ARGV[4] then
  return -1
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

for i = 9, #ARGV, 3 do
  local key, field, record = prefix .. ':c:' .. ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local size = string.sub(field, -1) == 'b' and 24 or 8
  local blob = redis.call('HGET', key, field) or ''
  local at, found = locate(blob, size)
  if record ~= '' or found then
    local rest = string.sub(blob, (at + (found and 1 or 0)) * size + 1)
    blob = string.sub(blob, 1, at * size) .. record .. rest
    if blob == '' then
      redis.call('HDEL', key, field)
    else
      redis.call('HSET', key, field, blob)
    end
  end
end

if ARGV[5] == '' then
  redis.call('HDEL', prefix .. ':a', id)
  redis.call('HDEL', prefix .. ':v', id)
  redis.call('HDEL', prefix .. ':pay', id)
else
  redis.call('HSET', prefix .. ':a', id, ARGV[5])
  redis.call('HSET', prefix .. ':v', id, ARGV[6])
  redis.call('HSET', prefix .. ':pay', id, ARGV[7])
end

local flags = ARGV[8]
if string.find(flags, 'p', 1, true) then
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
end
if string.find(flags, 'd', 1, true) then
  local building = redis.call('GET', 'hx:building')
  if building and building ~= generation then
    redis.call('SADD', 'hx:dirty:' .. building, id)
  end
end
return 1
