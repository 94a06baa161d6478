-- ingressctl's Lua balancer: endpoints of round-robin upstreams change without a reload.
--
-- The controller keeps one line per upstream in <prefix>/endpoints.txt ("name ip|port ip|port")
-- and posts changed lines to /ingressctl/endpoints on its private unix socket. Both land in
-- the shared dict `ingressctl_endpoints`; each worker parses a value once and caches it.
-- Nothing here comes from user objects: names and addresses were validated by the build.
local balancer = require "ngx.balancer"

local M = {}
local dict = ngx.shared.ingressctl_endpoints
local parsed = {}   -- name -> { raw = "...", peers = { {ip, port}, ... } }
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
    ngx.say(n)
end

local function peers_of(name)
    local raw = dict:get(name)
    if not raw then
        return nil
    end
    local entry = parsed[name]
    if not entry or entry.raw ~= raw then
        local peers = {}
        for ip, port in raw:gmatch("([^%s|]+)|(%d+)") do
            peers[#peers + 1] = { ip, tonumber(port) }
        end
        entry = { raw = raw, peers = peers }
        parsed[name] = entry
    end
    return entry.peers
end

-- balancer_by_lua: round robin per worker; a retry (proxy_next_upstream) takes the next peer.
function M.balance(name)
    local peers = peers_of(name)
    local n = peers and #peers or 0
    if n == 0 then
        ngx.log(ngx.ERR, "ingressctl: no endpoints for ", name)
        return ngx.exit(503)
    end
    local ctx = ngx.ctx
    local i
    if ctx.ingressctl_index == nil then
        i = (cursor[name] or 0) % n + 1
        cursor[name] = i
        if n > 1 then
            balancer.set_more_tries(math.min(n, 3) - 1)
        end
    else
        i = ctx.ingressctl_index % n + 1
    end
    ctx.ingressctl_index = i
    local ok, err = balancer.set_current_peer(peers[i][1], peers[i][2])
    if not ok then
        ngx.log(ngx.ERR, "ingressctl: set_current_peer failed for ", name, ": ", err)
        return ngx.exit(502)
    end
end

return M
