#!/usr/bin/env bash
# `make bench`, datapath part: HTTP requests/s and p99 latency (wrk) through nodeIP:nodePort, side by
# side in one run with the same backend reached directly and with kube-proxy-style iptables DNAT
# (10,000 services installed), Portway with eBPF host routing on and off; each with keep-alive and
# with a new connection per request.
#
#   client 192.0.2.10-13 ── eth0 │ node 192.0.2.1 (eth0; v-be1 ─ be1 10.11.1.2:8080 nginx)
#
# Each path is measured from its own client address (direct .10, host routing on .11, off .12,
# iptables .13). With one address, the backend's TIME_WAIT sockets left by one path meet the next
# path's SYNs on the very same 4-tuple (no SNAT: the backend sees client:port either way) but with
# another TCP timestamp offset (Linux draws it per source/destination address pair, and the client
# dials the pod IP directly but the node IP through the NodePort), so the backend rejects them by
# PAWS (TcpExtPAWSTimewait), the client resets and retransmits its SYN a second later: whichever
# path ran right after "direct" lost a third to two thirds of its new connections/s (issue 20).
# The "SYN retr." column counts the client's SYN retransmissions in the new-connection runs: a
# stall of this kind shows there, not as errors.
#
# Namespaces pwbench<pid>-*, bpffs /sys/fs/bpf/pwbench<pid>: removed on exit, also on Ctrl-C.
# Environment: PORTWAY (binary; default: swift build's), DURATION (per run, default 5s),
# CONNECTIONS (default 16), SERVICES (iptables services, default 10000), ROUNDS (default 3: direct,
# host routing on and off measured in turn each round, medians reported; the iptables row, whose
# rules stay in the node's netfilter, runs once at the end), BPF_STATS=1 (sets
# kernel.bpf_stats_enabled for the run, restored at exit, and prints each Portway program's average
# run time and runs per request for every Portway run). Needs root, wrk, nginx,
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
ROUNDS=${ROUNDS:-3}
BPF_STATS=${BPF_STATS:-0}
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
    [ -n "${STATS_WAS:-}" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
    rm -rf "$BPFFS" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

addns() { ip netns add "$1"; NAMESPACES+=("$1"); ip -n "$1" link set lo up; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
if [ "$BPF_STATS" = 1 ]; then
    STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
    sysctl -qw kernel.bpf_stats_enabled=1
fi

addns "$P-client"
addns "$P-node"
addns "$P-be1"
ip link add eth0 netns "$P-client" type veth peer name eth0 netns "$P-node"
ip -n "$P-client" addr add 192.0.2.10/24 dev eth0 && ip -n "$P-client" link set eth0 up
for a in 11 12 13; do ip -n "$P-client" addr add 192.0.2.$a/24 dev eth0; done
ip -n "$P-client" route add 10.11.0.0/16 via $NODE_IP src 192.0.2.10
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

# The client's SYN retransmissions so far (a counter of its namespace).
syn_retrans() {
    ip netns exec "$P-client" awk '/^TcpExt:/ {if (!h) {split($0, k); h=1} else {split($0, v); for (i in k) if (k[i]=="TCPSynRetrans") print v[i]}}' /proc/net/netstat
}

# Results of each round by "row/mode"; medians are taken at the end.
declare -A RPS P99 SYNR
run_row() {
    local name=$1 url=$2 src=$3 before
    # The client's own address for this row: NodePort rows reach the node through a host route
    # with that source; the direct row's route to the pods says .10.
    ip -n "$P-client" route replace $NODE_IP/32 dev eth0 src "$src"
    for mode in keepalive close; do
        before=$(syn_retrans)
        [ "$BPF_STATS" = 1 ] && [ "$name" != direct ] && prog_stats >"$WORK/stats.before"
        read -r rps p99 < <(measure "$url" "$mode")
        RPS[$name/$mode]+="$rps "
        P99[$name/$mode]+="$p99 "
        SYNR[$name/$mode]+="$(( $(syn_retrans) - before )) "
        if [ "$BPF_STATS" = 1 ] && [ "$name" != direct ]; then
            prog_stats | join "$WORK/stats.before" - | awk -v row="$name" -v mode="$mode" -v req="$rps" -v d="${DURATION%s}" \
                '{n = $5 - $3; t = $4 - $2; printf "bench-datapath: %s %s: %s %.0f ns per run, %.1f runs per request\n", row, mode, $1, n ? t / n : 0, req ? n / (req * d) : 0}' >&2
        fi
    done
}

# "device_direction run_time_ns run_cnt" of each attached Portway tc program, sorted (BPF_STATS=1).
prog_stats() {
    nsenter --net="/var/run/netns/$P-node" "$PORTWAY" bpf status --device eth0 --pod-device v-be1 --bpffs "$BPFFS" |
        awk '$3 == "prog" || $4 == "prog" {sub(/:$/, "", $2); print $1 "_" $2, ($3 == "prog" ? $4 : $5)}' |
        while read -r where id; do
            bpftool -j prog show id "$id" | python3 -c 'import json, sys; p = json.load(sys.stdin); print(sys.argv[1], p.get("run_time_ns", 0), p.get("run_cnt", 0))' "$where"
        done | sort
}

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print NR ? v[int((NR + 1) / 2)] : 0}'; }

attach() {
    nsenter --net="/var/run/netns/$P-node" "$PORTWAY" bpf attach --device eth0 --pod-device v-be1 --bpffs "$BPFFS" \
        --bpf-object "$OBJECT" "$@" | tail -n 1 >&2
}

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
for round in $(seq "$ROUNDS"); do
    echo "bench-datapath: round $round of $ROUNDS: direct, host routing on, off" >&2
    nsenter --net="/var/run/netns/$P-node" "$PORTWAY" bpf detach --device eth0 --pod-device v-be1 --bpffs "$BPFFS" >/dev/null
    run_row direct "http://$BE_IP:8080/" 192.0.2.10
    attach
    run_row "portway, host routing on" "http://$NODE_IP:30080/" 192.0.2.11
    attach --no-host-routing
    run_row "portway, host routing off" "http://$NODE_IP:30080/" 192.0.2.12
done
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
run_row "iptables DNAT, $SERVICES services" "http://$NODE_IP:30080/" 192.0.2.13

ROWS=("direct" "portway, host routing on" "portway, host routing off" "iptables DNAT, $SERVICES services")
declare -A MED
for row in "${ROWS[@]}"; do
    for mode in keepalive close; do
        MED[$row/$mode]=$(median "${RPS[$row/$mode]}")
        MED[$row/$mode/p99]=$(median "${P99[$row/$mode]}")
        MED[$row/$mode/synr]=$(median "${SYNR[$row/$mode]}")
    done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }
echo
echo "| path (wrk -t1 -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds; iptables 1) | keep-alive req/s | ratio | p99 ms | new conn. req/s | ratio | p99 ms | SYN retr. |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in "${ROWS[@]}"; do
    ka=${MED[$row/keepalive]} cl=${MED[$row/close]}
    echo "| $row | $ka | $(ratio "$ka" "${MED[direct/keepalive]}") | ${MED[$row/keepalive/p99]} | $cl | $(ratio "$cl" "${MED[direct/close]}") | ${MED[$row/close/p99]} | ${MED[$row/close/synr]} |"
done
echo
echo "Each round's new conn. req/s (direct / on / off): $(for r in $(seq "$ROUNDS"); do
    printf '%s/%s/%s ' "$(cut -d' ' -f"$r" <<<"${RPS[direct/close]}")" "$(cut -d' ' -f"$r" <<<"${RPS[portway, host routing on/close]}")" \
        "$(cut -d' ' -f"$r" <<<"${RPS[portway, host routing off/close]}")"; done)"

# Targets (issue 20), from the medians of this run.
on=("${MED[portway, host routing on/keepalive]}" "${MED[portway, host routing on/close]}")
off_cl=${MED[portway, host routing off/close]}
target() { # name value reference target-expression; the `target |` rows scripts/bench.sh gathers
    local met
    met=$(awk "BEGIN {print ($2 $4) ? \"yes\" : \"no\"}")
    echo "target | $1 | $2× | $3 | ${4/>=/≥ }× | $met |"
}
echo
target "L4 NodePort new connections/s, host routing on / direct" "$(ratio "${on[1]}" "${MED[direct/close]}")" "direct ${MED[direct/close]} req/s, portway ${on[1]}" ">=0.90"
target "L4 NodePort new connections/s, host routing on / off" "$(ratio "${on[1]}" "$off_cl")" "host routing off $off_cl req/s" ">=1.00"
target "L4 keep-alive req/s through the datapath / direct" "$(ratio "${on[0]}" "${MED[direct/keepalive]}")" "direct ${MED[direct/keepalive]} req/s, portway ${on[0]}" ">=0.95"
