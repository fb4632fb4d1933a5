-- Record areas' change tokens and the buckets they are registered in, in their area shard (one slot), before they
-- are registered in the buckets. KEYS[1]: the shard's token hash (area -> token). ARGV[1]: the shard's key prefix,
-- ARGV[2]: at most this many cells registered per area (0: no limit), then quadruples (area id, token, buckets as
-- 2-byte little-endian numbers, owner id or ''). The buckets are added to those already registered. Returns 1, or
-- the error INDEXBUSY (nothing recorded) when an area already has more cells registered than it may (pn, counted
-- by the caller as the buckets report them): one area edited in a loop across the map cannot grow Redis.
local prefix, max_cells = ARGV[1], tonumber(ARGV[2])
local pb, own = prefix .. 'pb', prefix .. 'own'
if max_cells > 0 then
  for i = 3, #ARGV, 4 do
    if tonumber(redis.call('HGET', prefix .. 'pn', ARGV[i]) or '0') >= max_cells then
      return redis.error_reply('INDEXBUSY area ' .. ARGV[i] .. ' changed too often since it was last indexed')
    end
  end
end
for i = 3, #ARGV, 4 do
  local id, token, buckets, owner = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('HSET', KEYS[1], id, token)
  local known = redis.call('HGET', pb, id) or ''
  local seen, merged = {}, {known}
  for j = 1, #known, 2 do seen[string.sub(known, j, j + 1)] = true end
  for j = 1, #buckets, 2 do
    local bucket = string.sub(buckets, j, j + 1)
    if not seen[bucket] then
      seen[bucket] = true
      merged[#merged + 1] = bucket
    end
  end
  redis.call('HSET', pb, id, table.concat(merged))
  if owner ~= '' then redis.call('HSET', own, id, owner) end
end
return 1
