-- A sign-in admitted by admit.lua succeeded: its attempt is taken back from every counter it was charged to.
-- KEYS as given to admit.lua. ARGV[1]: 0, or when KEYS[1] is a (username, address) counter, how many seconds that
-- address stays known to that username: its failures are forgotten and it is marked known.
local known_for = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if i == 1 and known_for > 0 then
    redis.call('HSET', key, 'n', 0, 'known', 1)
    redis.call('EXPIRE', key, known_for)
  elseif (tonumber(redis.call('HGET', key, 'n')) or 0) > 0 then
    redis.call('HINCRBY', key, 'n', -1)
  end
end
return 0
