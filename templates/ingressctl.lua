-- ingressctl's Lua balancer: endpoints of round-robin upstreams change without a reload.
--
-- The controller keeps one line per upstream in <prefix>/endpoints.txt ("name ip|port ip|port")
-- and posts changed lines to /ingressctl/endpoints on its private unix socket. Both land in
-- the shared dict `ingressctl_endpoints`; each worker parses a value once per change and caches it.
-- Nothing here comes from user objects: names and addresses were validated by the build.
local balancer = require "ngx.balancer"

local M = {}
local dict = ngx.shared.ingressctl_endpoints
local GENERATION = " generation"  -- bumped on every change; no upstream name has a space
local parsed = {}   -- name -> { {ip, port}, ... } as of `seen`
local seen = -1     -- the generation `parsed` reflects
local cursor = {}   -- name -> last index used by this worker

local function set_line(line)
    local name, rest = line:match("^(%S+)%s*(.*)$")
    if not name then
        return 0
    end
    if rest == "" then
        dict:delete(name)
    else
        local ok, err = dict:safe_set(name, rest)
        if not ok then
            ngx.log(ngx.ERR, "ingressctl: cannot store endpoints of ", name, ": ", err)
            return 0
        end
    end
    return 1
end

local function bump()
    dict:incr(GENERATION, 1, 0)
end

-- Called from init_by_lua on every (re)load: the file holds the current endpoints.
function M.load_file(path)
    local f = io.open(path, "r")
    if not f then
        return
    end
    for line in f:lines() do
        set_line(line)
    end
    f:close()
    bump()
end

-- POST /ingressctl/endpoints: changed lines; an empty list removes the upstream.
function M.update()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        local file = ngx.req.get_body_file()
        if file then
            local f = io.open(file, "r")
            body = f:read("*a")
            f:close()
        end
    end
    local n = 0
    for line in (body or ""):gmatch("[^\n]+") do
        n = n + set_line(line)
    end
    bump()
    ngx.say(n)
end

local function peers_of(name)
    local generation = dict:get(GENERATION) or 0
    if generation ~= seen then  -- something changed: parse again lazily, per upstream
        parsed = {}
        seen = generation
    end
    local peers = parsed[name]
    if peers == nil then
        local raw = dict:get(name)
        if not raw then
            return nil
        end
        peers = {}
        for ip, port in raw:gmatch("([^%s|]+)|(%d+)") do
            peers[#peers + 1] = { ip, tonumber(port) }
        end
        parsed[name] = peers
    end
    return peers
end

-- balancer_by_lua: round robin per worker; a retry (proxy_next_upstream) takes the next peer.
function M.balance(name)
    local peers = peers_of(name)
    local n = peers and #peers or 0
    if n == 0 then
        ngx.log(ngx.ERR, "ingressctl: no endpoints for ", name)
        return ngx.exit(503)
    end
    local i = (cursor[name] or 0) % n + 1
    cursor[name] = i
    if balancer.get_last_failure() then
        -- a retry: take the next peer not tried yet ($upstream_addr lists those, rare path)
        local tried = ", " .. (ngx.var.upstream_addr or "") .. ","
        for _ = 1, n do
            local p = peers[i]
            local addr = (p[1]:find(":", 1, true) and ("[" .. p[1] .. "]") or p[1]) .. ":" .. p[2]
            if not tried:find(" " .. addr .. ",", 1, true) then
                break
            end
            i = i % n + 1
        end
    elseif n > 1 then  -- first try: allow retries on the others
        balancer.set_more_tries(math.min(n, 3) - 1)
    end
    local ok, err = balancer.set_current_peer(peers[i][1], peers[i][2])
    if not ok then
        ngx.log(ngx.ERR, "ingressctl: set_current_peer failed for ", name, ": ", err)
        return ngx.exit(502)
    end
end

return M
