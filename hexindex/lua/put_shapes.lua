-- Share outlines that a web process had to fetch from PostgreSQL, so that the others find them in Redis: a hash of
-- at most ARGV[2] fields (when full, a random field makes room), part of its generation (dropped with it).
-- ARGV[1]: the hash. ARGV[2]: its capacity. ARGV[3..]: pairs (field, value).
local key, capacity = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  if redis.call('HEXISTS', key, ARGV[i]) == 0 and redis.call('HLEN', key) >= capacity then
    redis.call('HDEL', key, redis.call('HRANDFIELD', key))
  end
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
return 1
