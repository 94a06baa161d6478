-- ingressctl's request metrics, measured in nginx's log phase (issue 15).
--
-- Every request of an Ingress or Gateway server adds to counters: one request counter and,
-- per histogram, the bucket its value falls into and the sum. Each worker adds them up in an
-- array per label set of its own and moves them into the shared dict `ingressctl_metrics`
-- once a second (a shared-dict write takes a lock: fifteen per request cost 30% of
-- throughput). The controller reads the dict through GET /ingressctl/metrics on its private
-- socket and exposes it under ingress-nginx's names (ingressctl/metrics_requests.py).
--
-- Dict keys: "name<TAB>slot<TAB>host<TAB>status<TAB>method<TAB>canary<TAB>path ns ingress service"
-- (slot: a bucket number, "s" for the sum, "" for the request counter); the last field is
-- $ingressctl_metric_labels, which each location sets from validated names (no spaces).
--
-- Cardinality is bounded by construction: the labels are the server's name (not the Host
-- header), the Ingress path (not the URI), the Ingress/Service names the location sets, the
-- status and one of the standard methods (anything else is "OTHER"). Nothing here comes
-- from a client but those bounded values and numbers.
local M = {}
local dict = ngx.shared.ingressctl_metrics
local tonumber, pairs = tonumber, pairs

local METHODS = { GET = true, HEAD = true, POST = true, PUT = true, DELETE = true, PATCH = true,
                  OPTIONS = true, CONNECT = true, TRACE = true }
-- histograms in slot order: name, bucket kind
local HISTOGRAMS = {
    { "request_duration_seconds", "time" }, { "response_duration_seconds", "time" },
    { "connect_duration_seconds", "time" }, { "header_duration_seconds", "time" },
    { "request_size", "length" }, { "response_size", "length" }, { "bytes_sent", "size" },
}
local bounds = {}   -- histogram index -> sorted upper bounds
local base = {}     -- histogram index -> first array slot (its buckets, +Inf, then the sum)
local SLOTS = 1     -- array slots per label set (slot 1: the request counter)
local pending = {}  -- this worker's additions since the last flush: labels -> array
local FLUSH_SECONDS = 1

local function parse_bounds(text)
    local out = {}
    for b in (text or ""):gmatch("[^,]+") do
        out[#out + 1] = tonumber(b)
    end
    return out
end

-- init_by_lua: the bucket bounds of the three kinds (comma-separated numbers).
function M.init(time, length, size)
    local kinds = { time = parse_bounds(time), length = parse_bounds(length), size = parse_bounds(size) }
    SLOTS = 1
    for h, spec in ipairs(HISTOGRAMS) do
        bounds[h] = kinds[spec[2]]
        base[h] = SLOTS + 1
        SLOTS = SLOTS + #bounds[h] + 2  -- buckets, +Inf, sum
    end
end

local function key_of(slot, labels)
    if slot == 1 then
        return "requests\t\t" .. labels
    end
    for h = #HISTOGRAMS, 1, -1 do
        if slot >= base[h] then
            local i = slot - base[h] + 1
            local name = HISTOGRAMS[h][1]
            if i == #bounds[h] + 2 then
                return name .. "\ts\t" .. labels
            end
            return name .. "\t" .. i .. "\t" .. labels
        end
    end
end

-- Moves this worker's additions into the shared dict (every FLUSH_SECONDS, and on exit).
function M.flush()
    local batch = pending
    pending = {}
    for labels, values in pairs(batch) do
        for slot = 1, SLOTS do
            local v = values[slot]
            if v ~= 0 then
                local ok, err = dict:incr(key_of(slot, labels), v, 0)
                if not ok then
                    ngx.log(ngx.WARN, "ingressctl metrics: ", err)
                end
            end
        end
    end
end

-- init_worker_by_lua: the flush timer (also run once, prematurely, when the worker exits).
function M.init_worker()
    ngx.timer.every(FLUSH_SECONDS, function() M.flush() end)
end

-- The last number of an upstream timing ("0.004, 0.010" after a retry), or nil ("-").
local function last_number(value)
    if not value then
        return nil
    end
    return tonumber(value:match("([%d.]+)%s*$"))
end

local function observe(values, h, value)
    if not value or value < 0 then
        return
    end
    local bs = bounds[h]
    local n = #bs
    local i = n + 1
    for j = 1, n do
        if value <= bs[j] then
            i = j
            break
        end
    end
    local first = base[h]
    values[first + i - 1] = values[first + i - 1] + 1
    values[first + n + 1] = values[first + n + 1] + value
end

function M.log()
    local var = ngx.var
    local method = var.request_method
    if not METHODS[method] then
        method = "OTHER"
    end
    local host = var.ingressctl_host  -- set by a shared server block, "" elsewhere
    if not host or host == "" then
        host = var.server_name
    end
    if host == "_" then
        host = ""
    end
    local static = var.ingressctl_metric_labels
    if not static or static == "" then  -- answered before any location (a server-level return)
        static = "   "
    end
    local labels = host .. "\t" .. (var.status or "") .. "\t" .. method .. "\t"
        .. (var.proxy_alternative_upstream_name or "") .. "\t" .. static
    local values = pending[labels]
    if not values then
        values = {}
        for slot = 1, SLOTS do
            values[slot] = 0
        end
        pending[labels] = values
    end
    values[1] = values[1] + 1
    observe(values, 1, tonumber(var.request_time))
    if var.upstream_addr then
        observe(values, 2, last_number(var.upstream_response_time))
        observe(values, 3, last_number(var.upstream_connect_time))
        observe(values, 4, last_number(var.upstream_header_time))
    end
    observe(values, 5, tonumber(var.request_length))
    local sent = tonumber(var.bytes_sent)
    observe(values, 6, sent)
    observe(values, 7, sent)
end

-- GET /ingressctl/metrics on the private socket: "key<TAB>value" lines.
function M.dump()
    M.flush()
    local keys = dict:get_keys(0)
    local out = {}
    for i = 1, #keys do
        local v = dict:get(keys[i])
        if v then
            out[#out + 1] = keys[i] .. "\t" .. v .. "\n"
        end
    end
    ngx.print(out)
end

return M
