#!/usr/bin/env bash
# `make demo`: real packets through Portway's NodePort datapath, in network namespaces.
#
#   client 192.0.2.10 ── eth0 │ node 192.0.2.1 (portway agent, tc programs on eth0) │ ── be1 10.11.1.2
#                                                                                 │ ── be2 10.11.2.2
#                                                                                 │ ── be3 10.11.3.2
# The backends are "pods" running python3 -m http.server answering with their name. The agent runs
# in file mode on a copy of examples/ (a NodePort Service, and a Gateway routing by Host through
# the agent's L7 proxy). Everything is removed on exit, also on Ctrl-C.
# Environment: PORTWAY (the binary; default: swift build's), REQUESTS (per round, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "make demo needs root (network namespaces, eBPF): run it as root, e.g. sudo make demo" >&2
    exit 1
fi
for tool in ip nsenter python3 curl; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is missing (make deps installs what Portway needs)" >&2; exit 1; }
done

PORTWAY=${PORTWAY:-$(swift build --show-bin-path 2>/dev/null)/portway}
OBJECT=${PORTWAY_BPF_OBJECT:-bpf/out/portway_lb.o}
REQUESTS=${REQUESTS:-30}
[ -x "$PORTWAY" ] || { echo "demo: $PORTWAY not found; run make build" >&2; exit 1; }
[ -f "$OBJECT" ] || { echo "demo: $OBJECT not found; run make bpf" >&2; exit 1; }

P=pwdemo$$
NODE_IP=192.0.2.1
CLIENT_IP=192.0.2.10
URL=http://$NODE_IP:30080/
WORK=$(mktemp -d /tmp/portway-demo.XXXXXX)
BPFFS=/sys/fs/bpf/$P
AGENT_PID=""
NAMESPACES=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
    trap - EXIT INT TERM
    set +e
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    for ns in "${NAMESPACES[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$BPFFS" "$WORK"
    echo "demo: cleaned up (namespaces $P-*, $BPFFS)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

addns() { ip netns add "$1"; NAMESPACES+=("$1"); ip -n "$1" link set lo up; }

say "network namespaces: client, node, three backend pods"
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
    # The standard place (systemd mounts it there too); left mounted afterwards.
    mount -t bpf bpf /sys/fs/bpf
fi
addns "$P-client"
addns "$P-node"
ip link add eth0 netns "$P-client" type veth peer name eth0 netns "$P-node"
ip -n "$P-client" addr add $CLIENT_IP/24 dev eth0 && ip -n "$P-client" link set eth0 up
ip -n "$P-node" addr add $NODE_IP/24 dev eth0 && ip -n "$P-node" link set eth0 up
ip netns exec "$P-node" sysctl -qw net.ipv4.ip_forward=1
for i in 1 2 3; do
    be="$P-be$i"
    addns "$be"
    ip link add "v-be$i" netns "$P-node" type veth peer name eth0 netns "$be"
    ip -n "$P-node" addr add "10.11.$i.1/24" dev "v-be$i" && ip -n "$P-node" link set "v-be$i" up
    ip -n "$be" addr add "10.11.$i.2/24" dev eth0 && ip -n "$be" link set eth0 up
    ip -n "$be" route add default via "10.11.$i.1"
    mkdir -p "$WORK/www/be$i" && echo "web-be$i" > "$WORK/www/be$i/index.html"
    # Its access log (stderr) kept: the mirror step counts the copies web-be1 received.
    ip netns exec "$be" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$WORK/www/be$i" >/dev/null 2>"$WORK/be$i.log" &
    echo "  pod web-be$i  10.11.$i.2:8080 (on the node)"
done
echo "  client $CLIENT_IP -> node $NODE_IP (device eth0)"
for i in 1 2 3; do  # until every pod's server answers
    for _ in $(seq 50); do
        ip netns exec "$P-node" curl -s --max-time 1 -o /dev/null "http://10.11.$i.2:8080/" && break
        sleep 0.1
    done
done

say "portway agent --from-dir (a copy of examples/) --device eth0"
cp -r examples "$WORK/examples"
mkdir -p "$BPFFS"
# nsenter, not `ip netns exec`: the latter remounts /sys, hiding the bpffs at /sys/fs/bpf.
nsenter --net="/var/run/netns/$P-node" "$PORTWAY" agent --from-dir "$WORK/examples" --device eth0 \
    --node-name demo-node --node-ip $NODE_IP --bpffs "$BPFFS" --bpf-object "$OBJECT" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!

# Until the frontend is programmed (the agent logs one line per sync).
for _ in $(seq 100); do
    "$PORTWAY" bpf lb list --bpffs "$BPFFS" 2>/dev/null | grep -q "$NODE_IP:30080" && break
    kill -0 "$AGENT_PID" 2>/dev/null || { echo "the agent exited:"; cat "$WORK/agent.log"; exit 1; }
    sleep 0.1
done
sed 's/^/  agent: /' "$WORK/agent.log"

hits() {
    # $REQUESTS requests from the client, each a new TCP connection, counted per answering pod.
    for _ in $(seq "$REQUESTS"); do
        ip netns exec "$P-client" curl -s --max-time 2 "$URL" || echo "(no answer: curl exit $?)"
    done | sort | uniq -c | sed 's/^/  /'
}

say "portway bpf lb list --bpffs $BPFFS"
"$PORTWAY" bpf lb list --bpffs "$BPFFS" | sed 's/^/  /'

say "$REQUESTS requests from the client to $URL"
hits

say "edit the EndpointSlice: web-be3 goes away"
python3 - "$WORK/examples/web-endpointslice.yaml" <<'EOF'
import os, sys
path = sys.argv[1]
lines = open(path).read().split("\n")
out, skip = [], False
for line in lines:
    if line.startswith("- addresses:"):
        skip = "10.11.3.2" in line
    if not skip:
        out.append(line)
tmp = path + ".tmp"
open(tmp, "w").write("\n".join(out))
os.rename(tmp, path)  # atomic, as kubectl/ConfigMap updates are
EOF
for _ in $(seq 50); do
    "$PORTWAY" bpf lb list --bpffs "$BPFFS" 2>/dev/null | grep -q "10.11.3.2" || break
    sleep 0.1
done
tail -n 1 "$WORK/agent.log" | sed 's/^/  agent: /'
"$PORTWAY" bpf lb list --bpffs "$BPFFS" | sed 's/^/  /'

say "$REQUESTS requests again: traffic moved to the remaining pods"
hits

say "Host routing through the Gateway NodePort $NODE_IP:30088 (the agent's L7 proxy, examples/gateway.yaml)"
for host in a.example.com b.example.com c.example.com; do
    for _ in $(seq 30); do  # until the proxy port is open
        ip netns exec "$P-client" curl -s --max-time 1 -o /dev/null "http://$NODE_IP:30088/" && break
        sleep 0.1
    done
    printf '  Host: %-14s -> %s\n' "$host" "$(ip netns exec "$P-client" curl -s --max-time 2 -w ' (HTTP %{http_code})' -H "Host: $host" "http://$NODE_IP:30088/" | tr -d '\n')"
done

say "a redirect answered by the proxy: Host a.example.com, GET /old/page (examples/gateway.yaml)"
ip netns exec "$P-client" curl -s --max-time 2 -o /dev/null -w '  HTTP %{http_code}, Location: %{redirect_url}\n' \
    -H "Host: a.example.com" "http://$NODE_IP:30088/old/page"

say "a mirror: 5 requests to Host b.example.com are answered by web-be2, and web-a (web-be1) gets a copy of each"
before=$(grep -c '"GET /?mirrored' "$WORK/be1.log" || true)
for n in 1 2 3 4 5; do
    printf '  GET /?mirrored=%s -> %s\n' "$n" "$(ip netns exec "$P-client" curl -s --max-time 2 -w ' (HTTP %{http_code})' -H "Host: b.example.com" "http://$NODE_IP:30088/?mirrored=$n" | tr -d '\n' | cut -c1-60)"
done
for _ in $(seq 50); do  # the copies are fire-and-forget: they may land just after the answers
    [ "$(grep -c '"GET /?mirrored' "$WORK/be1.log" || true)" -ge $((before + 5)) ] && break
    sleep 0.1
done
echo "  web-be1's access log: $(( $(grep -c '"GET /?mirrored' "$WORK/be1.log" || true) - before )) copies of /?mirrored=N received"

say "portway explain --to $NODE_IP:30088 --host a.example.com (the rule's timeouts and retry: its policy line)"
"$PORTWAY" explain -f "$WORK/examples" --node-ip $NODE_IP --to $NODE_IP:30088 --host a.example.com | sed 's/^/  /'

say "kill -9 the agent: the pinned maps and tcx links keep serving"
kill -9 "$AGENT_PID" && wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=""
hits

say "done"
