-- wrk script for the batch lookup: POST batches of BATCH consecutive query points (one "lat=..&lng=.." per line
-- in the file given after `--`, then the batch size), each thread starting at a different place.
local bodies = {}
local index = 0

function init(args)
  local size = tonumber(args[2])
  local points = {}
  for line in io.lines(args[1]) do
    local lat, lng = line:match("lat=([^&]+)&lng=(.+)")
    points[#points + 1] = string.format('{"lat":%s,"lng":%s}', lat, lng)
  end
  for first = 1, #points - size + 1, size do
    bodies[#bodies + 1] = '{"points":[' .. table.concat(points, ",", first, first + size - 1) .. ']}'
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  index = math.random(#bodies)
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, bodies[index])
end

function done(summary, latency, requests)
  io.write(string.format("bench: requests %d bytes %d\n", summary.requests, summary.bytes))
end
