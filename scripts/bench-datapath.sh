#!/usr/bin/env bash
# `make bench`, datapath part: HTTP requests/s and p99 latency (wrk) through nodeIP:nodePort, side by
# side in one run with the same backend reached directly and with kube-proxy-style iptables DNAT
# (10,000 services installed), Portway with eBPF host routing on and off; each with keep-alive and
# with a new connection per request.
#
#   client 192.0.2.10 ── eth0 │ node 192.0.2.1 (eth0; v-be1 ─ be1 10.11.1.2:8080 nginx)
#
# Namespaces pwbench<pid>-*, bpffs /sys/fs/bpf/pwbench<pid>: removed on exit, also on Ctrl-C.
# Environment: PORTWAY (binary; default: swift build's), DURATION (per run, default 5s),
# CONNECTIONS (default 16), SERVICES (iptables services, default 10000). Needs root, wrk, nginx,
# iptables-restore (make deps installs them). Prints a Markdown table; ratios are to "direct".
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench-datapath: skipped (needs root: network namespaces, eBPF)" >&2
    exit 0
fi
for tool in ip nsenter wrk nginx iptables-restore; do
    command -v "$tool" >/dev/null || { echo "bench-datapath: $tool is missing (make deps installs it)" >&2; exit 1; }
done

PORTWAY=${PORTWAY:-$(swift build --show-bin-path 2>/dev/null)/portway}
OBJECT=${PORTWAY_BPF_OBJECT:-bpf/out/portway_lb.o}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-16}
SERVICES=${SERVICES:-10000}
[ -x "$PORTWAY" ] || { echo "bench-datapath: $PORTWAY not found; run make build" >&2; exit 1; }
[ -f "$OBJECT" ] || { echo "bench-datapath: $OBJECT not found; run make bpf" >&2; exit 1; }

P=pwbench$$
NODE_IP=192.0.2.1
BE_IP=10.11.1.2
WORK=$(mktemp -d /tmp/portway-bench.XXXXXX)
BPFFS=/sys/fs/bpf/$P
NAMESPACES=()
AGENT_PID=""

cleanup() {
    trap - EXIT INT TERM
    set +e
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    for ns in "${NAMESPACES[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$BPFFS" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

addns() { ip netns add "$1"; NAMESPACES+=("$1"); ip -n "$1" link set lo up; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

addns "$P-client"
addns "$P-node"
addns "$P-be1"
ip link add eth0 netns "$P-client" type veth peer name eth0 netns "$P-node"
ip -n "$P-client" addr add 192.0.2.10/24 dev eth0 && ip -n "$P-client" link set eth0 up
ip -n "$P-client" route add 10.11.0.0/16 via $NODE_IP
ip -n "$P-node" addr add $NODE_IP/24 dev eth0 && ip -n "$P-node" link set eth0 up
ip netns exec "$P-node" sysctl -qw net.ipv4.ip_forward=1
ip link add v-be1 netns "$P-node" type veth peer name eth0 netns "$P-be1"
ip -n "$P-node" addr add 10.11.1.1/24 dev v-be1 && ip -n "$P-node" link set v-be1 up
ip -n "$P-be1" addr add $BE_IP/24 dev eth0 && ip -n "$P-be1" link set eth0 up
ip -n "$P-be1" route add default via 10.11.1.1

cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
    keepalive_requests 1000000;
    server { listen 8080 reuseport backlog=4096; location / { return 200 "be1\n"; } }
}
EOF
ip netns exec "$P-be1" nginx -c "$WORK/nginx.conf" -g "daemon off;" >/dev/null 2>&1 &
for _ in $(seq 50); do
    ip netns exec "$P-client" wrk -t1 -c1 -d1s "http://$BE_IP:8080/" >/dev/null 2>&1 && break
    sleep 0.1
done

cat >"$WORK/web.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: web, namespace: bench}
spec:
  type: NodePort
  clusterIP: 10.96.0.80
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: bench
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
- {addresses: ["$BE_IP"], conditions: {ready: true}, nodeName: bench-node}
EOF

# wrk in the client namespace; prints "requests/s p99_ms".
measure() {
    local url=$1 mode=$2 out
    local header=()
    [ "$mode" = close ] && header=(-H "Connection: close")
    out=$(ip netns exec "$P-client" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${header[@]}" "$url" 2>&1)
    awk '/Requests\/sec/ {rps=$2} $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; p99=v}
         END {printf "%d %.2f\n", rps, p99}' <<<"$out"
}

declare -A RPS P99
run_row() {
    local name=$1 url=$2
    for mode in keepalive close; do
        read -r rps p99 < <(measure "$url" "$mode")
        RPS[$name/$mode]=$rps
        P99[$name/$mode]=$p99
    done
}

attach() {
    nsenter --net="/var/run/netns/$P-node" "$PORTWAY" bpf attach --device eth0 --pod-device v-be1 --bpffs "$BPFFS" \
        --bpf-object "$OBJECT" "$@" | tail -n 1 >&2
}

echo "bench-datapath: direct" >&2
run_row direct "http://$BE_IP:8080/"

echo "bench-datapath: portway (agent programs the maps, then exits; the datapath stays)" >&2
mkdir -p "$BPFFS" "$WORK/yaml" && cp "$WORK/web.yaml" "$WORK/yaml/"
nsenter --net="/var/run/netns/$P-node" "$PORTWAY" agent --from-dir "$WORK/yaml" --device eth0 --pod-device v-be1 \
    --node-name bench-node --node-ip $NODE_IP --bpffs "$BPFFS" --bpf-object "$OBJECT" \
    --service-map-size 4096 --backend-map-size 4096 --revnat-map-size 4096 --affinity-map-size 4096 \
    --ct-map-size 262144 --snat-map-size 4096 >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do
    "$PORTWAY" bpf lb list --bpffs "$BPFFS" 2>/dev/null | grep -q "$NODE_IP:30080" && break
    kill -0 "$AGENT_PID" 2>/dev/null || { echo "the agent exited:"; cat "$WORK/agent.log"; exit 1; }
    sleep 0.1
done
kill "$AGENT_PID" && wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=""
attach
run_row "portway, host routing on" "http://$NODE_IP:30080/"
attach --no-host-routing
run_row "portway, host routing off" "http://$NODE_IP:30080/"
nsenter --net="/var/run/netns/$P-node" "$PORTWAY" bpf detach --device eth0 --pod-device v-be1 --bpffs "$BPFFS" >/dev/null

echo "bench-datapath: iptables DNAT, $SERVICES services (kube-proxy style)" >&2
python3 - "$SERVICES" "$NODE_IP" "$BE_IP" >"$WORK/rules" <<'EOF'
import sys
n, node, backend = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = ["*nat", ":PREROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-SVC-WEB - [0:0]", ":KUBE-SEP-WEB - [0:0]"]
out += [f":KUBE-SVC-{i} - [0:0]\n:KUBE-SEP-{i} - [0:0]" for i in range(n)]
out.append("-A PREROUTING -j KUBE-SERVICES")
for i in range(n):  # one ClusterIP per service, each with one endpoint elsewhere
    out.append(f"-A KUBE-SERVICES -d 10.96.{i // 250 + 1}.{i % 250 + 1}/32 -p tcp --dport 80 -j KUBE-SVC-{i}")
    out.append(f"-A KUBE-SVC-{i} -j KUBE-SEP-{i}")
    out.append(f"-A KUBE-SEP-{i} -p tcp -j DNAT --to-destination 10.20.{i // 250 + 1}.{i % 250 + 1}:8080")
# kube-proxy jumps to the NodePorts last, for local destinations.
out.append("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
out.append("-A KUBE-NODEPORTS -p tcp --dport 30080 -j KUBE-SVC-WEB")
out.append("-A KUBE-SVC-WEB -j KUBE-SEP-WEB")
out.append(f"-A KUBE-SEP-WEB -p tcp -j DNAT --to-destination {backend}:8080")
out.append("COMMIT")
print("\n".join(out))
EOF
ip netns exec "$P-node" iptables-restore <"$WORK/rules"
run_row "iptables DNAT, $SERVICES services" "http://$NODE_IP:30080/"

ROWS=("direct" "portway, host routing on" "portway, host routing off" "iptables DNAT, $SERVICES services")
echo
echo "| path (wrk -t1 -c$CONNECTIONS -d$DURATION) | keep-alive req/s | ratio | p99 ms | new conn. req/s | ratio | p99 ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in "${ROWS[@]}"; do
    ka=${RPS[$row/keepalive]} cl=${RPS[$row/close]}
    ka_ratio=$(awk -v a="$ka" -v b="${RPS[direct/keepalive]}" 'BEGIN {printf "%.2f", b ? a / b : 0}')
    cl_ratio=$(awk -v a="$cl" -v b="${RPS[direct/close]}" 'BEGIN {printf "%.2f", b ? a / b : 0}')
    echo "| $row | $ka | $ka_ratio | ${P99[$row/keepalive]} | $cl | $cl_ratio | ${P99[$row/close]} |"
done
