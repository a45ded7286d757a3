#!/usr/bin/env bash
# `make bench`, L7 part: HTTP requests/s and p50/p99 latency (wrk) through a Portway Gateway's
# NodePort, routed by Host to two backends, side by side in one run with Debian's nginx in the same
# node namespace configured with the same Host routing; each with keep-alive and with a new
# connection per request.
#
#   client 192.0.2.10 ── eth0 │ node 192.0.2.1 (eth0)  portway agent: Gateway NodePort :30880 → L7 proxy
#                             │                        nginx:        :8088 (server_name a/b → proxy_pass)
#                             │ v-be1 ─ be1 10.11.1.2:8080 nginx "backend-a"
#                             │ v-be2 ─ be2 10.11.2.2:8080 nginx "backend-b"
#
# wrk sends GET / alternating `Host: a.example.com` / `Host: b.example.com` (a Lua script). The agent
# runs in file mode (`--from-dir`: a Gateway, two HTTPRoutes, their Services/EndpointSlices and the
# Gateway's NodePort Service as a dump holds it); its datapath hands nodeIP:30880 to the proxy.
# Same CPU budget: the proxy gets --proxy-threads $THREADS event loops, nginx worker_processes $THREADS.
# Both add X-Forwarded-For/-Proto/-Host and Forwarded, and keep pooled keep-alive upstream connections.
#
# Namespaces pwbn<pid>-*, bpffs /sys/fs/bpf/pwbn<pid>: removed on exit, also on Ctrl-C.
# Environment: PORTWAY (binary; default: the release build), DURATION (per run, default 5s),
# CONNECTIONS (default 16), THREADS (default 1), ROUNDS (default 3; medians are reported),
# PERF=1 (after the measured runs, counts system calls per keep-alive request, the agent's mallocs
# and swift_retain calls per keep-alive request (uprobes), and records the agent
# with `perf record -g` during one more keep-alive run, or with PERF_MODE=close one more
# new-connection run, into $PERF_OUT). Besides requests/s and latency, each row reports the proxy's CPU time per
# request (user + system of the agent process, or of nginx's master and workers): on a shared machine
# the steadier figure.
# Needs root, wrk, nginx. Prints a Markdown table and the Portway/nginx ratio lines.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench-l7: skipped (needs root: network namespaces, eBPF)" >&2
    exit 0
fi
for tool in ip nsenter wrk nginx curl; do
    command -v "$tool" >/dev/null || { echo "bench-l7: $tool is missing (make deps installs it)" >&2; exit 1; }
done

PORTWAY=${PORTWAY:-$(swift build -c release --show-bin-path 2>/dev/null)/portway}
OBJECT=${PORTWAY_BPF_OBJECT:-bpf/out/portway_lb.o}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
PERF=${PERF:-0}
PERF_OUT=${PERF_OUT:-/tmp/portway-l7.perf.data}
PERF_MODE=${PERF_MODE:-keepalive}
[ -x "$PORTWAY" ] || { echo "bench-l7: $PORTWAY not found; run swift build -c release --product portway" >&2; exit 1; }
[ -f "$OBJECT" ] || { echo "bench-l7: $OBJECT not found; run make bpf" >&2; exit 1; }
[ "$PERF" != 1 ] || command -v perf >/dev/null || { echo "bench-l7: PERF=1 needs perf (linux-perf)" >&2; exit 1; }

P=pwbn$$
NODE_IP=192.0.2.1
GATEWAY_PORT=30880
NGINX_PORT=8088
WORK=$(mktemp -d /tmp/portway-bench-l7.XXXXXX)
BPFFS=/sys/fs/bpf/$P
NAMESPACES=()
AGENT_PID=""
NGINX_PIDS=()
PERF_PID=""
PROBES=""

cleanup() {
    trap - EXIT INT TERM
    set +e
    [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    for pid in "${NGINX_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    for ns in "${NAMESPACES[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    [ -n "$PROBES" ] && perf probe -q -d "$P:*" 2>/dev/null
    rm -rf "$BPFFS" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

addns() { ip netns add "$1"; NAMESPACES+=("$1"); ip -n "$1" link set lo up; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

addns "$P-client"
addns "$P-node"
ip link add eth0 netns "$P-client" type veth peer name eth0 netns "$P-node"
ip -n "$P-client" addr add 192.0.2.10/24 dev eth0 && ip -n "$P-client" link set eth0 up
ip -n "$P-node" addr add $NODE_IP/24 dev eth0 && ip -n "$P-node" link set eth0 up
ip netns exec "$P-node" sysctl -qw net.ipv4.ip_forward=1
# Otherwise default sysctls. Both proxies close first after `Connection: close`, so the node keeps a
# TIME_WAIT socket per connection for 60 s, and the client, cycling through its ephemeral ports,
# reuses ports whose 4-tuple still has one: the kernel recycles it for the new SYN (through the L7LB
# redirect too, with pw_sk_lookup; before it such SYNs were dropped, see docs/BENCHMARKS.md). The
# "SYN retr." column counts the client's SYN retransmissions in the new-connection runs: a stalled
# connection shows there.

# nginx -c FILE in namespace NS, in the foreground (its pid is ours to kill).
start_nginx() {
    local ns=$1 conf=$2
    ip netns exec "$ns" nginx -c "$conf" -g "daemon off;" >"$conf.log" 2>&1 &
    NGINX_PIDS+=($!)
}
common_http="access_log off;
    client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
    keepalive_requests 1000000;"

for i in 1 2; do
    name=$([ $i = 1 ] && echo a || echo b)
    addns "$P-be$i"
    ip link add "v-be$i" netns "$P-node" type veth peer name eth0 netns "$P-be$i"
    ip -n "$P-node" addr add "10.11.$i.1/24" dev "v-be$i" && ip -n "$P-node" link set "v-be$i" up
    ip -n "$P-be$i" addr add "10.11.$i.2/24" dev eth0 && ip -n "$P-be$i" link set eth0 up
    ip -n "$P-be$i" route add default via "10.11.$i.1"
    mkdir -p "$WORK/be$i"
    echo "backend-$name" >"$WORK/be$i/index.html"
    cat >"$WORK/be$i.conf" <<EOF
worker_processes 1;
pid $WORK/be$i.pid;
error_log $WORK/be$i.err;
events { worker_connections 4096; }
http {
    $common_http
    server { listen 8080 reuseport backlog=4096; root $WORK/be$i; location / { index index.html; } }
}
EOF
    start_nginx "$P-be$i" "$WORK/be$i.conf"
done

# The reference: nginx in the node namespace with the same Host routing, pooled upstream connections
# and the same forwarding headers as Portway adds; unknown hosts get 404 as from the Gateway.
cat >"$WORK/node-nginx.conf" <<EOF
worker_processes $THREADS;
pid $WORK/node-nginx.pid;
error_log $WORK/node-nginx.err;
events { worker_connections 4096; }
http {
    $common_http
    upstream backend_a { server 10.11.1.2:8080; keepalive 32; }
    upstream backend_b { server 10.11.2.2:8080; keepalive 32; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Host \$host;
    proxy_set_header Forwarded "for=\$remote_addr;host=\"\$host\";proto=\$scheme";
    proxy_buffering off;
    server { listen $NODE_IP:$NGINX_PORT default_server reuseport backlog=4096; return 404; }
    server { listen $NODE_IP:$NGINX_PORT; server_name a.example.com; location / { proxy_pass http://backend_a; } }
    server { listen $NODE_IP:$NGINX_PORT; server_name b.example.com; location / { proxy_pass http://backend_b; } }
}
EOF
start_nginx "$P-node" "$WORK/node-nginx.conf"
NODE_NGINX_PID=$!

mkdir -p "$WORK/yaml" "$BPFFS"
cat >"$WORK/yaml/gateway.yaml" <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portway}
spec: {controllerName: portway.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: bench}
spec:
  gatewayClassName: portway
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: v1
kind: Service
metadata:
  name: portway-gw-web
  namespace: bench
  labels: {gateway.networking.k8s.io/gateway-name: web}
spec:
  type: NodePort
  clusterIP: 10.96.0.80
  ports:
  - {name: http, port: 80, targetPort: 80, nodePort: $GATEWAY_PORT, protocol: TCP}
EOF
for i in 1 2; do
    name=$([ $i = 1 ] && echo a || echo b)
    cat >>"$WORK/yaml/gateway.yaml" <<EOF
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-$name, namespace: bench}
spec:
  parentRefs: [{name: web}]
  hostnames: [$name.example.com]
  rules:
  - backendRefs: [{name: web-$name, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-$name, namespace: bench}
spec:
  clusterIP: 10.96.0.8$i
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-$name-1
  namespace: bench
  labels: {kubernetes.io/service-name: web-$name}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: ["10.11.$i.2"], conditions: {ready: true}, nodeName: bench-node}
EOF
done

# nsenter, not `ip netns exec`: the latter remounts /sys, hiding the bpffs.
nsenter --net="/var/run/netns/$P-node" "$PORTWAY" agent --from-dir "$WORK/yaml" --device eth0 \
    --node-name bench-node --node-ip $NODE_IP --bpffs "$BPFFS" --bpf-object "$OBJECT" --proxy-threads "$THREADS" \
    --service-map-size 1024 --backend-map-size 1024 --revnat-map-size 1024 --affinity-map-size 1024 \
    --ct-map-size 262144 --snat-map-size 4096 --log-level notice >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!

# Until both proxies route a and b to the right backend and an unknown host gets 404.
check() {
    local url=$1 host=$2 want=$3 got
    got=$(ip netns exec "$P-client" curl -s --max-time 1 -w ' %{http_code}' -H "Host: $host" "$url" 2>/dev/null | tr -d '\n') || true
    [ "$got" = "$want" ]
}
for url in "http://$NODE_IP:$GATEWAY_PORT/" "http://$NODE_IP:$NGINX_PORT/"; do
    ok=""
    for _ in $(seq 150); do
        if check "$url" a.example.com "backend-a 200" && check "$url" b.example.com "backend-b 200" \
            && ip netns exec "$P-client" curl -s -o /dev/null --max-time 1 -w '%{http_code}' -H "Host: c.example.com" "$url" | grep -q 404; then
            ok=1
            break
        fi
        kill -0 "$AGENT_PID" 2>/dev/null || { echo "bench-l7: the agent exited:" >&2; cat "$WORK/agent.log" >&2; exit 1; }
        sleep 0.2
    done
    [ -n "$ok" ] || { echo "bench-l7: $url does not route by Host; agent log:" >&2; cat "$WORK/agent.log" "$WORK"/*.err >&2; exit 1; }
done

# nginx's workers (children of the master) in the node: their CPU counts for nginx's row.
NODE_NGINX_WORKERS=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$NODE_NGINX_PID" '$4 == p {print $1}' | tr '\n' ' ')
[ -n "$NODE_NGINX_WORKERS" ] || { echo "bench-l7: no nginx worker found in the node" >&2; exit 1; }

# wrk's request alternates the Host header; wrk -H headers (Connection: close) are kept.
cat >"$WORK/hosts.lua" <<'EOF'
local requests = {}
local n = 0
function init(args)
    for i, host in ipairs({"a.example.com", "b.example.com"}) do
        local headers = {}
        for k, v in pairs(wrk.headers) do headers[k] = v end
        headers["Host"] = host
        requests[i] = wrk.format("GET", "/", headers)
    end
end
function request()
    n = n + 1
    return requests[n % 2 + 1]
end
EOF

# Processes whose CPU time a proxy's row is charged with: the agent (all its threads), or nginx's
# master and workers in the node.
proxy_pids() {
    if [ "$1" = portway ]; then echo "$AGENT_PID"; else echo "$NODE_NGINX_PID" $NODE_NGINX_WORKERS; fi
}
# User + system CPU ticks of those processes so far.
cpu_ticks() {
    local total=0 pid
    for pid in $(proxy_pids "$1"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# The client's SYN retransmissions so far (a counter of its namespace).
syn_retrans() {
    ip netns exec "$P-client" awk '/^TcpExt:/ {if (!h) {split($0, k); h=1} else {split($0, v); for (i in k) if (k[i]=="TCPSynRetrans") print v[i]}}' /proc/net/netstat
}

# wrk in the client namespace against row $1; prints "requests/s p50_ms p99_ms errors cpu_us_per_request requests syn_retransmissions".
measure() {
    local row=$1 mode=$2 out before after synr
    local header=()
    [ "$mode" = close ] && header=(-H "Connection: close")
    before=$(cpu_ticks "$row")
    synr=$(syn_retrans)
    out=$(ip netns exec "$P-client" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/hosts.lua" "${header[@]}" "${URL[$row]}" 2>&1)
    after=$(cpu_ticks "$row")
    synr=$(( $(syn_retrans) - synr ))
    awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" -v synr="$synr" \
        'function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 } if (v ~ /ms$/) { sub(/ms$/, "", v); return v } if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
         /requests in/ {n=$1} /Requests\/sec/ {rps=$2} $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)}
         /Non-2xx/ {err+=$NF} /Socket errors/ {gsub(/,/, ""); err+=$4+$6+$8+$10}
         END {printf "%d %.3f %.3f %d %.1f %d %d\n", rps, p50, p99, err, n ? ticks * 1e6 / hz / n : 0, n, synr}' <<<"$out"
}

declare -A RUNS
ROWS=("portway" "nginx")
declare -A URL=([portway]="http://$NODE_IP:$GATEWAY_PORT/" [nginx]="http://$NODE_IP:$NGINX_PORT/")
for round in $(seq "$ROUNDS"); do
    for mode in keepalive close; do
        for row in "${ROWS[@]}"; do  # side by side: each round measures both, one right after the other
            read -r rps p50 p99 err cpu _ synr < <(measure "$row" "$mode")
            echo "bench-l7: round $round $row $mode: $rps req/s p50 $p50 ms p99 $p99 ms, $cpu µs CPU/request, errors $err, SYN retransmissions $synr" >&2
            RUNS[$row/$mode]+="$rps $p50 $p99 $err $cpu $synr
"
        done
    done
done

# Median of column $1 over the rounds; errors are summed.
median() { awk -v c="$1" 'NF {print $c}' | sort -g | awk '{v[++n]=$1} END {print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2}'; }
errors() { awk '{s+=$4} END {print s + 0}'; }
synretrans() { awk '{s+=$6} END {print s + 0}'; }
declare -A RPS P50 P99 ERR CPU SYNR
for row in "${ROWS[@]}"; do
    for mode in keepalive close; do
        RPS[$row/$mode]=$(median 1 <<<"${RUNS[$row/$mode]}")
        P50[$row/$mode]=$(median 2 <<<"${RUNS[$row/$mode]}")
        P99[$row/$mode]=$(median 3 <<<"${RUNS[$row/$mode]}")
        ERR[$row/$mode]=$(errors <<<"${RUNS[$row/$mode]}")
        CPU[$row/$mode]=$(median 5 <<<"${RUNS[$row/$mode]}")
        SYNR[$row/$mode]=$(synretrans <<<"${RUNS[$row/$mode]}")
    done
done

echo
echo "| L7, Host a/b alternating (wrk -t1 -c$CONNECTIONS -d$DURATION, median of $ROUNDS; $THREADS thread(s) each) | keep-alive req/s | p50 ms | p99 ms | CPU µs/req | new conn. req/s | p50 ms | p99 ms | CPU µs/req | errors | SYN retr. (new conn., all rounds) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in "${ROWS[@]}"; do
    label=$([ "$row" = portway ] && echo "portway Gateway NodePort ($NODE_IP:$GATEWAY_PORT)" || echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') in the node ($NODE_IP:$NGINX_PORT)")
    echo "| $label | ${RPS[$row/keepalive]} | ${P50[$row/keepalive]} | ${P99[$row/keepalive]} | ${CPU[$row/keepalive]} | ${RPS[$row/close]} | ${P50[$row/close]} | ${P99[$row/close]} | ${CPU[$row/close]} | $((ERR[$row/keepalive] + ERR[$row/close])) | ${SYNR[$row/close]} |"
done
echo
# Issue 20's targets from this run's medians: the `target |` rows scripts/bench.sh gathers.
for mode in keepalive close; do
    label=$([ "$mode" = keepalive ] && echo "keep-alive" || echo "new connection per request")
    awk -v m="$label" -v t="$THREADS" -v a="${RPS[portway/$mode]}" -v b="${RPS[nginx/$mode]}" -v pa="${P99[portway/$mode]}" -v pb="${P99[nginx/$mode]}" \
        -v ca="${CPU[portway/$mode]}" -v cb="${CPU[nginx/$mode]}" \
        'BEGIN {r = b ? a / b : 0; q = pb ? pa / pb : 0; c = cb ? ca / cb : 0
                who = sprintf("%d proxy thread%s vs %d nginx worker%s", t, t == 1 ? "" : "s", t, t == 1 ? "" : "s")
                printf "target | L7 %s req/s, Host routing through the Gateway NodePort, %s | %.2f× (%d req/s) | nginx %d req/s | ≥ 1.0× | %s |\n", m, who, r, a, b, (r >= 1.0 ? "yes" : "no")
                printf "target | L7 %s p99, %s | %.2f ms (%.2f× nginx) | nginx %.2f ms | ≤ nginx | %s |\n", m, who, pa, q, pb, (q <= 1.0 ? "yes" : "no")
                printf "target | L7 %s CPU per request, %s | %.1f µs (%.2f× nginx) | nginx %.1f µs | ≤ nginx | %s |\n", m, who, ca, c, cb, (c <= 1.0 ? "yes" : "no")}'
done

if [ "$PERF" = 1 ]; then
    # After the measured runs, so perf's overhead never lands in a number above.
    for row in "${ROWS[@]}"; do
        pids=$(proxy_pids "$row" | tr ' ' ,)
        perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_ctl -p "$pids" -o "$WORK/syscalls.$row" &
        PERF_PID=$!
        sleep 1  # counting begun before the first request
        read -r _ _ _ _ _ requests < <(measure "$row" keepalive)
        kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
        awk -F, -v row="$row" -v n="$requests" '/raw_syscalls/ {all = $1} /epoll_ctl/ {ctl = $1}
            END {printf "bench-l7: %s keep-alive: %.1f syscalls per request, of which epoll_ctl %.2f\n", row, n ? all / n : 0, n ? ctl / n : 0}' "$WORK/syscalls.$row" >&2
    done
    # Heap allocations (libc malloc) and Swift retains per keep-alive request of the agent, counted
    # with uprobes in one more run: steady counts (runs agree within a fraction of a percent), where the
    # CPU time swings with the machine's load.
    libc=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')
    swiftcore=$(ldd "$PORTWAY" | awk '/libswiftCore\.so/ {print $3; exit}')
    PROBES=1  # whatever is added below is removed on exit
    if [ -n "$libc" ] && [ -n "$swiftcore" ] && perf probe -q -x "$libc" -a "$P:malloc=malloc" 2>/dev/null \
        && perf probe -q -x "$swiftcore" -a "$P:retain=swift_retain" 2>/dev/null; then
        perf stat -x, -e "$P:malloc,$P:retain" -p "$(proxy_pids portway | tr ' ' ,)" -o "$WORK/probes" &
        PERF_PID=$!
        # Attaching uprobes to a running process takes a moment: counting must have begun before the
        # first request (else a short run's counts fall short by as much; the idle second adds little).
        sleep 1
        read -r _ _ _ _ _ requests < <(measure portway keepalive)
        kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
        awk -F, -v n="$requests" '/:malloc/ {m = $1} /:retain/ {r = $1}
            END {printf "bench-l7: portway keep-alive: %.1f mallocs, %.1f swift_retain calls per request\n", n ? m / n : 0, n ? r / n : 0}' "$WORK/probes" >&2
    else
        echo "bench-l7: no uprobes on malloc/swift_retain (perf probe failed): allocations not counted" >&2
    fi
    echo "bench-l7: profiling the agent: perf record -g during one more Portway $PERF_MODE run" >&2
    perf record -g -o "$PERF_OUT" -p "$AGENT_PID" >/dev/null 2>&1 &
    PERF_PID=$!
    measure portway "$PERF_MODE" >/dev/null
    kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    echo "bench-l7: perf data in $PERF_OUT (perf report -i $PERF_OUT --children --sort sym | swift demangle)" >&2
fi
