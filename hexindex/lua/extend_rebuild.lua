-- Keep the rebuild lock while working, atomically: only its owner extends it (a rebuild whose lock expired and was
-- taken by another learns it here). KEYS[1]: the lock. ARGV[1]: its value (generation:owner), ARGV[2]: seconds.
-- Returns 1 when extended, 0 when the lock is someone else's or gone.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
