-- ingressctl's request metrics, measured in nginx's log phase (issue 15).
--
-- Every request of an Ingress or Gateway server adds to counters in the shared dict
-- `ingressctl_metrics`: one request counter and, per histogram, the bucket its value falls
-- into and the sum. The controller reads them all through GET /ingressctl/metrics on its
-- private socket and exposes them under ingress-nginx's names (ingressctl/metrics_requests.py).
--
-- Cardinality is bounded by construction: the labels are the server's name (not the Host
-- header), the Ingress path (not the URI), the Ingress/Service names the location sets, the
-- status and one of the standard methods (anything else is "OTHER"). Nothing here comes
-- from a client but those bounded values and numbers.
local M = {}
local dict = ngx.shared.ingressctl_metrics
local tonumber, concat = tonumber, table.concat

local buckets = {}  -- histogram letter -> sorted upper bounds
local METHODS = { GET = true, HEAD = true, POST = true, PUT = true, DELETE = true, PATCH = true,
                  OPTIONS = true, CONNECT = true, TRACE = true }

local function bounds(text)
    local out = {}
    for b in (text or ""):gmatch("[^,]+") do
        out[#out + 1] = tonumber(b)
    end
    return out
end

-- init_by_lua: the bucket bounds of the three kinds (comma-separated numbers).
function M.init(time, length, size)
    buckets.time, buckets.length, buckets.size = bounds(time), bounds(length), bounds(size)
end

-- The last number of an upstream timing ("0.004, 0.010" after a retry), or nil ("-").
local function last_number(value)
    if not value then
        return nil
    end
    return tonumber(value:match("([%d.]+)%s*$"))
end

local function observe(name, kind, value, labels)
    if not value or value < 0 then
        return
    end
    local bs = buckets[kind]
    local i = #bs + 1
    for j = 1, #bs do
        if value <= bs[j] then
            i = j
            break
        end
    end
    dict:incr(name .. "\t" .. i .. "\t" .. labels, 1, 0)
    dict:incr(name .. "\ts\t" .. labels, value, 0)
end

function M.log()
    local var = ngx.var
    local method = var.request_method
    if not METHODS[method] then
        method = "OTHER"
    end
    local host = var.server_name
    if host == "_" then
        host = ""
    end
    local labels = concat({ host, var.status or "", method, var.location_path or "", var.namespace or "",
                            var.ingress_name or "", var.service_name or "", var.proxy_alternative_upstream_name or "" },
                          "\t")
    dict:incr("requests\t\t" .. labels, 1, 0)
    observe("request_duration_seconds", "time", tonumber(var.request_time), labels)
    local upstream = var.upstream_addr
    if upstream and upstream ~= "" then
        observe("response_duration_seconds", "time", last_number(var.upstream_response_time), labels)
        observe("connect_duration_seconds", "time", last_number(var.upstream_connect_time), labels)
        observe("header_duration_seconds", "time", last_number(var.upstream_header_time), labels)
    end
    observe("request_size", "length", tonumber(var.request_length), labels)
    local sent = tonumber(var.bytes_sent)
    observe("response_size", "length", sent, labels)
    observe("bytes_sent", "size", sent, labels)
end

-- GET /ingressctl/metrics on the private socket: "key<TAB>value" lines.
function M.dump()
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
