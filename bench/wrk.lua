-- wrk script: cycle through the benchmark's query points (one "lat=..&lng=.." per line in the file given
-- after `--`), each thread starting at a different place.
local points = {}
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    points[#points + 1] = line
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  index = math.random(#points)
end

function request()
  index = index % #points + 1
  return wrk.format("GET", wrk.path .. "?" .. points[index])
end

-- wrk's exact totals (its Transfer/sec line is rounded), for the mean bytes per response.
function done(summary, latency, requests)
  io.write(string.format("bench: requests %d bytes %d\n", summary.requests, summary.bytes))
end
