-- One wrk script for every scenario of bench/run.sh:
--   wrk ... -s bench/lua/scenario.lua URL -- SCENARIO OUTDIR [JPEG]
-- Each wrk thread has its own Lua state and loads the seeded tokens, users
-- and posts from OUTDIR; each request picks a random signed-in user (so the
-- load comes from many distinct users, not one hot row) and a random target.
--
-- messages_list and message_send act on a conversation of the signed-in
-- user: OUTDIR/conversations.txt ("username conversation_id", one line per
-- participant, written by tools/bench_seed.c) is joined with tokens.txt
-- ("token id username") by username, and those requests pick among the
-- tokens whose user is in a conversation (anyone else would get 404s).

local scenario, outdir, jpeg_path
local tokens, users, posts = {}, {}, {}
local members = {} -- { token, { conversation_id... } } for each token user in one
local jpeg
local flip = false
local LIKE_LAG = 32
-- the like scenario's queue of { token, post }: entries liked_first..liked_last
-- (explicit bounds: # is not defined on a table with holes at its start)
local liked, liked_first, liked_last = {}, 1, 0

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
  local of_user = {}
  for _, line in ipairs(lines(outdir .. "/conversations.txt")) do
    local name, id = line:match("^(%S+) (%S+)")
    if name then
      of_user[name] = of_user[name] or {}
      table.insert(of_user[name], id)
    end
  end
  for _, line in ipairs(lines(outdir .. "/tokens.txt")) do
    local token, name = line:match("^(%S+) %S+ (%S+)")
    tokens[#tokens + 1] = line:match("^(%S+)")
    if token and of_user[name] then members[#members + 1] = { token, of_user[name] } end
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

local function signed_json_headers(token)
  return { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

-- A random signed-in participant and one of their conversations' paths.
local function my_conversation()
  local member = pick(members)
  return { ["Authorization"] = "Bearer " .. member[1] },
         "/api/v1/conversations/" .. pick(member[2]) .. "/messages"
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
    -- like, then unlike the same post as the same user: likes and unlikes
    -- alternate, and an unlike takes the oldest like of this thread once
    -- more than LIKE_LAG are queued (more than the thread's connections),
    -- so its like has been answered. Counts stay bounded, and every
    -- unlike removes a like (an unlike of a random pair would mostly find
    -- nothing to remove, and cost less than a real one).
    flip = not flip
    if flip or liked_last - liked_first + 1 <= LIKE_LAG then
      local token, post = pick(tokens), pick(posts)
      liked_last = liked_last + 1
      liked[liked_last] = { token, post }
      return wrk.format("POST", "/api/v1/posts/" .. post .. "/like",
                        signed_json_headers(token), "{}")
    end
    local pair = liked[liked_first]
    liked[liked_first] = nil
    liked_first = liked_first + 1
    return wrk.format("DELETE", "/api/v1/posts/" .. pair[2] .. "/like",
                      signed_json_headers(pair[1]), "{}")
  end,
  comment = function()
    return wrk.format("POST", "/api/v1/posts/" .. pick(posts) .. "/comments",
                      json_headers(), '{"text":"Benchmark comment"}')
  end,
  post_create = post_create,
  messages_list = function()
    -- a page (the default 20) of one of my conversations, newest first
    local h, path = my_conversation()
    return wrk.format("GET", path, h)
  end,
  message_send = function()
    local h, path = my_conversation()
    h["Content-Type"] = "application/json"
    return wrk.format("POST", path, h, '{"text":"Benchmark message"}')
  end,
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
