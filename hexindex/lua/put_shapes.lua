-- Share outlines that a web process had to fetch from PostgreSQL, so that the others find them in Redis: a hash of
-- at most ARGV[1] fields per bucket (when full, a random field makes room), part of its generation (dropped with
-- it). KEYS[1]: the bucket's shapes hash. ARGV[2..]: pairs (field, value).
local capacity = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 and redis.call('HLEN', KEYS[1]) >= capacity then
    redis.call('HDEL', KEYS[1], redis.call('HRANDFIELD', KEYS[1]))
  end
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
