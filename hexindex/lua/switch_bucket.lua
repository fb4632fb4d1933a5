-- Switch one bucket's lookups to a rebuilt generation (one slot), unless areas changed while it was built are still
-- to be copied into it there. KEYS[1]: the bucket's generation key. ARGV[1]: the bucket's key prefix, ARGV[2]:
-- the generation. Returns 1 when switched, 0 when dirty areas wait.
if redis.call('SCARD', ARGV[1] .. 'dirty:' .. ARGV[2]) > 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', ARGV[1] .. 'dirty:' .. ARGV[2])
return 1
