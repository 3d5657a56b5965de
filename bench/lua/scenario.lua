-- One wrk script for every scenario of bench/run.sh:
--   wrk ... -s bench/lua/scenario.lua URL -- SCENARIO OUTDIR [JPEG]
-- Each wrk thread has its own Lua state and loads the seeded tokens, users
-- and posts from OUTDIR; each request picks a random signed-in user (so the
-- load comes from many distinct users, not one hot row) and a random target.

local scenario, outdir, jpeg_path
local tokens, users, posts = {}, {}, {}
local jpeg
local flip = false

local function lines(path)
  local t = {}
  local f = io.open(path, "r")
  if f then
    for line in f:lines() do t[#t + 1] = line end
    f:close()
  end
  return t
end

function init(args)
  scenario, outdir, jpeg_path = args[1], args[2], args[3]
  for _, line in ipairs(lines(outdir .. "/tokens.txt")) do
    tokens[#tokens + 1] = line:match("^(%S+)")
  end
  for _, line in ipairs(lines(outdir .. "/users.txt")) do
    users[#users + 1] = line:match("^%S+ (%S+)")
  end
  posts = lines(outdir .. "/posts.txt")
  if jpeg_path then
    local f = io.open(jpeg_path, "rb")
    if f then jpeg = f:read("*all"); f:close() end
  end
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

local function pick(t) return t[math.random(#t)] end

local function auth()
  return { ["Authorization"] = "Bearer " .. pick(tokens) }
end

local function json_headers()
  local h = auth()
  h["Content-Type"] = "application/json"
  return h
end

local boundary = "benchboundary7MA4YWxkTrZu0gW"

local function post_create()
  local body = "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="image"; filename="bench.jpg"\r\n' ..
    "Content-Type: image/jpeg\r\n\r\n" .. jpeg .. "\r\n" ..
    "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="caption"\r\n\r\n' ..
    "Benchmark photo #bench #wrk\r\n" ..
    "--" .. boundary .. "--\r\n"
  local h = auth()
  h["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  return wrk.format("POST", "/api/v1/posts", h, body)
end

local builders = {
  profile = function()
    return wrk.format("GET", "/api/v1/users/" .. pick(users), auth())
  end,
  me = function() return wrk.format("GET", "/api/v1/me", auth()) end,
  post_get = function()
    return wrk.format("GET", "/api/v1/posts/" .. pick(posts), auth())
  end,
  feed = function() return wrk.format("GET", "/api/v1/feed", auth()) end,
  profile_posts = function()
    return wrk.format("GET", "/api/v1/users/" .. pick(users) .. "/posts", auth())
  end,
  like = function()
    -- like then unlike: each connection alternates, so counts stay bounded
    flip = not flip
    return wrk.format(flip and "POST" or "DELETE",
                      "/api/v1/posts/" .. pick(posts) .. "/like", json_headers(), "{}")
  end,
  comment = function()
    return wrk.format("POST", "/api/v1/posts/" .. pick(posts) .. "/comments",
                      json_headers(), '{"text":"Benchmark comment"}')
  end,
  post_create = post_create,
  search_users = function()
    return wrk.format("GET", "/api/v1/search/users?q=bench_u" .. math.random(99), auth())
  end,
  login = function()
    local h = { ["Content-Type"] = "application/json" }
    return wrk.format("POST", "/api/v1/auth/login", h,
      '{"login":"' .. pick(users) .. '","password":"bench-password-1"}')
  end,
  mixed = function()
    -- the DeathStarBench social-network mix: 60% home feed, 30% a profile's
    -- posts, 10% new posts
    local r = math.random(100)
    if r <= 60 then return wrk.format("GET", "/api/v1/feed", auth()) end
    if r <= 90 then
      return wrk.format("GET", "/api/v1/users/" .. pick(users) .. "/posts", auth())
    end
    return post_create()
  end,
}

function request()
  return builders[scenario]()
end
