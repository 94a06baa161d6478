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
local rings = {}    -- name -> consistent-hash ring of its peers (affinity balanced), as of `seen`
local ids = {}      -- name -> { cookie value -> peer index } (affinity persistent), as of `seen`
local POINTS = 160  -- ring points per endpoint: shares within a few percent of equal

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

local CERTIFICATE = "@cert|"  -- "@cert|<listener>|<name>" -> certificate file name (no upstream name has "@")
local certs_dir = ""         -- <prefix>/certs/, next to the endpoint file

-- Called from init_by_lua on every (re)load: the file holds the current endpoints and
-- certificate table. Certificate entries the file no longer has are removed (a stale one
-- would serve a host a certificate it no longer has); stale upstreams are only unused.
function M.load_file(path)
    certs_dir = path:match("^(.*/)") .. "certs/"
    local f = io.open(path, "r")
    if not f then
        return
    end
    local certificates = {}
    for line in f:lines() do
        set_line(line)
        if line:sub(1, #CERTIFICATE) == CERTIFICATE then
            certificates[line:match("^%S+")] = true
        end
    end
    f:close()
    for _, key in ipairs(dict:get_keys(0)) do
        if key:sub(1, #CERTIFICATE) == CERTIFICATE and not certificates[key] then
            dict:delete(key)
        end
    end
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
        parsed, rings, ids = {}, {}, {}
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

local function address(p)
    return (p[1]:find(":", 1, true) and ("[" .. p[1] .. "]") or p[1]) .. ":" .. p[2]
end

local function tried(p)
    return (", " .. (ngx.var.upstream_addr or "") .. ","):find(" " .. address(p) .. ",", 1, true) ~= nil
end

-- The next peer after index i not tried yet by this request ($upstream_addr lists those).
local function untried_from(peers, i)
    local n = #peers
    for _ = 1, n do
        if not tried(peers[i]) then
            return i
        end
        i = i % n + 1
    end
    return i
end

local function set_peer(name, p)
    local ok, err = balancer.set_current_peer(p[1], p[2])
    if not ok then
        ngx.log(ngx.ERR, "ingressctl: set_current_peer failed for ", name, ": ", err)
        return ngx.exit(502)
    end
end

-- Session affinity ------------------------------------------------------------------------
-- The location sets $ingressctl_affinity ("mode cookie change_on_failure expires secure
-- samesite conditional", see ingress/model.py Affinity) and $ingressctl_affinity_cookie.

local function ring_of(name, peers)
    local r = rings[name]
    if r then
        return r
    end
    local points = {}
    for i, p in ipairs(peers) do
        local key = address(p)
        for k = 1, POINTS do
            points[#points + 1] = { ngx.crc32_long(key .. "#" .. k), i }
        end
    end
    table.sort(points, function(a, b) return a[1] < b[1] end)
    r = { hashes = {}, owners = {} }
    for j, point in ipairs(points) do
        r.hashes[j], r.owners[j] = point[1], point[2]
    end
    rings[name] = r
    return r
end

local function ring_find(r, key)
    local h = ngx.crc32_long(key)
    local lo, hi = 1, #r.hashes
    if h > r.hashes[hi] then
        return r.owners[1]
    end
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if r.hashes[mid] < h then
            lo = mid + 1
        else
            hi = mid
        end
    end
    return r.owners[lo]
end

local function id_of(name, p)
    return ngx.md5(name .. "|" .. address(p))
end

local function ids_of(name, peers)
    local m = ids[name]
    if not m then
        m = {}
        for i, p in ipairs(peers) do
            m[id_of(name, p)] = i
        end
        ids[name] = m
    end
    return m
end

local function parse_setting(setting)
    return setting:match("^(%S+) (%S+) ([01]) (%d+) (%S+) (%S+) ([01])$")
end

local function cookie_value(cookie)
    local header = ngx.var.http_cookie
    if not header then
        return nil
    end
    local escaped = cookie:gsub("[%-%.]", "%%%0")
    return (";" .. header):match(";%s*" .. escaped .. "=([^;%s]*)")
end

-- A new session: a peer not tried by this request, and the cookie value naming it.
local function new_session(name, peers, mode)
    local n = #peers
    if mode == "persistent" then
        local i = untried_from(peers, (cursor[name] or 0) % n + 1)
        cursor[name] = i
        return i, id_of(name, peers[i])
    end
    local r = ring_of(name, peers)
    local base = ngx.var.request_id
    for k = 0, 3 * n do
        local value = k == 0 and base or (base .. k)
        local i = ring_find(r, value)
        if not tried(peers[i]) or k == 3 * n then
            return i, value
        end
    end
end

local function sticky(name, peers, setting)
    local mode, cookie, change = parse_setting(setting)
    if not mode then
        return nil
    end
    local failed = balancer.get_last_failure() ~= nil
    local ctx = ngx.ctx
    local i
    if not (failed and (change == "1" or ctx.ingressctl_cookie)) then
        local value = ctx.ingressctl_cookie or cookie_value(cookie)
        if value and value ~= "" then
            if mode == "persistent" then
                i = ids_of(name, peers)[value]
            else
                i = ring_find(ring_of(name, peers), value)
            end
        end
    end
    if not i then  -- no session, its endpoint left, or it failed with change-on-failure
        local value
        i, value = new_session(name, peers, mode)
        ctx.ingressctl_cookie = value
    end
    return i
end

-- iOS 12, macOS 10.14 Safari and Chrome 4x-6x reject SameSite=None cookies (or treat them
-- as Strict): session-cookie-conditional-samesite-none leaves the attribute out for them.
local function samesite_none_ok(ua)
    if not ua then
        return true
    end
    if ua:find("Chrome/[456]%d") or ua:find("CPU iPhone OS 12", 1, true) or ua:find("iPad; CPU OS 12", 1, true) then
        return false
    end
    return not (ua:find("Macintosh", 1, true) and ua:find("Intel Mac OS X 10_14", 1, true)
                and ua:find("Safari", 1, true) and not ua:find("Chrome", 1, true))
end

-- header_filter_by_lua of a location with affinity: the cookie of a new (or moved) session.
function M.set_affinity_cookie()
    local value = ngx.ctx.ingressctl_cookie
    local setting = ngx.var.ingressctl_affinity
    if not value or not setting then
        return
    end
    local _, cookie, _, expires, secure, samesite, conditional = parse_setting(setting)
    if not cookie then
        return
    end
    local parts = { cookie, "=", value }
    if expires ~= "0" then
        parts[#parts + 1] = "; Expires=" .. ngx.cookie_time(ngx.time() + tonumber(expires))
    end
    parts[#parts + 1] = ngx.var.ingressctl_affinity_cookie or ""
    if secure == "on" or (secure == "auto" and ngx.var.https == "on") then
        parts[#parts + 1] = "; Secure"
    end
    parts[#parts + 1] = "; HttpOnly"
    if samesite ~= "-" and not (conditional == "1" and samesite == "None"
                                and not samesite_none_ok(ngx.var.http_user_agent)) then
        parts[#parts + 1] = "; SameSite=" .. samesite
    end
    local line = table.concat(parts)
    local existing = ngx.header["Set-Cookie"]
    if type(existing) == "table" then
        existing[#existing + 1] = line
        ngx.header["Set-Cookie"] = existing
    elseif existing then
        ngx.header["Set-Cookie"] = { existing, line }
    else
        ngx.header["Set-Cookie"] = line
    end
end

-- balancer_by_lua: round robin per worker (or the session's endpoint, with affinity); a
-- retry (proxy_next_upstream) takes the next peer not tried yet.
function M.balance(name)
    local peers = peers_of(name)
    local n = peers and #peers or 0
    if n == 0 then
        ngx.log(ngx.ERR, "ingressctl: no endpoints for ", name)
        return ngx.exit(503)
    end
    local first = not balancer.get_last_failure()
    local timeout = tonumber(ngx.var.ingressctl_timeout or "")  -- a Gateway API rule's timeout
    if timeout then
        balancer.set_timeouts(math.min(timeout, 5), timeout, timeout)
    elseif first and n > 1 then  -- allow retries on the others
        balancer.set_more_tries(math.min(n, 3) - 1)
    end
    local setting = ngx.var.ingressctl_affinity
    local i = setting and setting ~= "" and sticky(name, peers, setting)
    if not i then
        i = (cursor[name] or 0) % n + 1
        if not first then
            i = untried_from(peers, i)
        end
        cursor[name] = i
    end
    return set_peer(name, peers[i])
end

-- ssl_client_hello_by_lua in the default server of a listener (it runs before nginx picks the
-- server by SNI, so in the default server's configuration): servers without an SSL context
-- of their own keep the default server's context and the certificate set here, chosen by SNI
-- in nginx's order: the exact name, then "**." wildcards (any depth, longest first), then "*."
-- (one label). A server with a context of its own replaces it when nginx switches to it. A
-- name without an entry keeps the default certificate. Parsed certificates are cached per
-- worker by file name, which changes with the content.
local ssl, clienthello
local loaded, loaded_count = {}, 0

local function certificate_file(listener, name)
    local base = CERTIFICATE .. listener .. "|"
    local file = dict:get(base .. name)
    if file then
        return file
    end
    local rest = name:match("^[^.]+%.(.+)$")
    local one_label = rest
    while rest do
        file = dict:get(base .. "**." .. rest)
        if file then
            return file
        end
        rest = rest:match("^[^.]+%.(.+)$")
    end
    return one_label and dict:get(base .. "*." .. one_label)
end

local function load_pair(file)
    local pair = loaded[file]
    if pair then
        return pair
    end
    local f, err = io.open(certs_dir .. file, "r")
    if not f then
        return nil, err
    end
    local pem = f:read("*a")
    f:close()
    local cert, cert_err = ssl.parse_pem_cert(pem)
    local key, key_err = ssl.parse_pem_priv_key(pem)
    if not cert or not key then
        return nil, cert_err or key_err
    end
    if loaded_count >= 1000 then  -- bounded: a worker keeps at most 1000 parsed certificates
        loaded, loaded_count = {}, 0
    end
    pair = { cert, key }
    loaded[file], loaded_count = pair, loaded_count + 1
    return pair
end

function M.certificate(listener)
    ssl = ssl or require "ngx.ssl"
    clienthello = clienthello or require "ngx.ssl.clienthello"
    local name = clienthello.get_client_hello_server_name()
    if not name then
        return  -- no SNI: the default certificate
    end
    name = name:lower():gsub("%.$", "")
    local file = certificate_file(listener, name)
    if not file then
        return
    end
    local pair, err = load_pair(file)
    if not pair then
        ngx.log(ngx.ERR, "ingressctl: cannot load certificate ", file, " for ", name, ": ", err)
        return
    end
    local ok
    ok, err = ssl.clear_certs()
    if ok then
        ok, err = ssl.set_cert(pair[1])
    end
    if ok then
        ok, err = ssl.set_priv_key(pair[2])
    end
    if not ok then
        ngx.log(ngx.ERR, "ingressctl: cannot set certificate ", file, " for ", name, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

return M
