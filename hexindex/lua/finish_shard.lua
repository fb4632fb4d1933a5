-- After an area's buckets were updated: its shard's record of where it is live, and of where it is still pending
-- (one slot). KEYS[1]: the shard's token hash. ARGV[1]: the shard's key prefix, ARGV[2]: the generation, then
-- quintuples (area id, expected token: '*' for any, buckets holding its records (2-byte little-endian each), its
-- versions ('': forgotten; '-': leave both as they are), buckets where its registration was cleared). Drops cleared buckets
-- from its registration; when none is left and its token is still the expected one, the area is no longer
-- pending. Returns pairs (area id, owner id) of the areas no longer pending (their owner's count goes down).
local prefix, generation = ARGV[1], ARGV[2]
local pb, own = prefix .. 'pb', prefix .. 'own'
local rb, v = prefix .. generation .. ':rb', prefix .. generation .. ':v'
local done = {}
for i = 3, #ARGV, 5 do
  local id, expected, buckets, versions, cleared = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if versions == '-' then
    -- an unpend alone: where the area is live does not change
  elseif versions == '' then
    redis.call('HDEL', rb, id)
    redis.call('HDEL', v, id)
  else
    redis.call('HSET', rb, id, buckets)
    redis.call('HSET', v, id, versions)
  end
  local gone = {}
  for j = 1, #cleared, 2 do gone[string.sub(cleared, j, j + 1)] = true end
  local registered, left = redis.call('HGET', pb, id) or '', {}
  for j = 1, #registered, 2 do
    local bucket = string.sub(registered, j, j + 1)
    if not gone[bucket] then left[#left + 1] = bucket end
  end
  local token = redis.call('HGET', KEYS[1], id)
  if #left > 0 then
    redis.call('HSET', pb, id, table.concat(left))
  elseif token and (expected == '*' or token == expected) then
    redis.call('HDEL', pb, id)
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', prefix .. 'pn', id)
    done[#done + 1] = id
    done[#done + 1] = redis.call('HGET', own, id) or ''
    redis.call('HDEL', own, id)
  elseif not token then
    redis.call('HDEL', pb, id)
    redis.call('HDEL', prefix .. 'pn', id)
  end
end
return done
