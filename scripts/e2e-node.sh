#!/usr/bin/env bash
# `make e2e-node`: Portway exactly as a user runs it, on a real kubelet node (../shared/kube/node)
# with kube-proxy off:   e2e-node.sh IMAGE.tar REF
#  1. the node up (PORTWAY_NODE_KUBE_PROXY=0), the image loaded, the Gateway API CRDs installed;
#  2. every manifest validated by a server-side dry run, then the README's install steps (only the
#     image reference overridden): the DaemonSet pod becomes Ready;
#  3. a Deployment behind a NodePort Service reached from outside the node (netns knode-ext); a pod
#     reaching a ClusterIP Service and the kubernetes Service; a Gateway with two HTTPRoutes routing
#     by Host through the Gateway's NodePort; /metrics scraped; `kubectl logs` in JSON;
#  4. request loops from outside (NodePort and Gateway, each with a new connection per request and
#     with one keep-alive connection) through `kubectl set image` to a re-tagged image, a pod delete
#     and a SIGKILL of the agent container: zero failed requests (a GET lost in flight is retried
#     once on a new connection, as clients may for idempotent requests; such retries are reported);
#  5. the uninstall of docs/OPERATING.md: no programs, links, pins, policy-routing rules or routes
#     left; then the node goes down and the host is as it was (checked).
# Skips (exit 0, saying why) without root or ../shared/kube/node; with CI=true that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAR=${1:?usage: e2e-node.sh IMAGE.tar REF}
REF=${2:?usage: e2e-node.sh IMAGE.tar REF}
NODE=${PORTWAY_NODE_TOOLS:-$ROOT/../shared/kube/node}
CRDS=${PORTWAY_GATEWAY_CRDS:-$ROOT/../shared/gateway-api-crds/v1.6.1}
T0=$(date +%s)
log() { echo "[e2e-node $(($(date +%s) - T0))s] $*" >&2; }
skip() {
  if [ "${CI:-}" = true ]; then echo "e2e-node: FAILED: cannot run in CI: $*" >&2; exit 1; fi
  echo "e2e-node: skipped: $*"; exit 0
}
[ "$(id -u)" = 0 ] || skip "not root (the node needs root)"
[ -x "$NODE/up.sh" ] || skip "$NODE/up.sh not found (../shared/kube/node)"
[ -d "$CRDS" ] || skip "$CRDS not found (the Gateway API CRDs)"
command -v kubectl >/dev/null || skip "kubectl not found"
[ -f "$TAR" ] || { echo "e2e-node: $TAR not found (make image)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/pw-e2e-node.XXXXXX)
NS=pw-e2e
UPGRADED=${REF%:*}:$(basename "${REF##*:}")-e2e-upgrade
LOOPS=()
NODE_STARTED=0
host_state() { # what Portway may leave on a host: policy rules, table 2005, pins, pod bridge ports' tc
  { ip rule | grep 'lookup 2005' || true; ip route show table 2005 2>/dev/null || true; ls -d /sys/fs/bpf/portway 2>/dev/null || true; } | sort
}
host_state >"$WORK/host.before"
# The agent sets net.ipv4.tcp_migrate_req=1 (take-overs move queued connections); put it back after.
MIGRATE_REQ=$(sysctl -n net.ipv4.tcp_migrate_req 2>/dev/null || echo "")
fail() {
  echo "e2e-node: FAILED: $*" >&2
  if [ "$NODE_STARTED" = 1 ]; then
    kubectl get pods -A -o wide >&2 || true
    kubectl -n portway-system logs ds/portway --all-containers --tail=40 >&2 2>/dev/null || true
    kubectl -n portway-system describe pods >"$WORK/describe.txt" 2>&1 || true
  fi
  exit 1
}
cleanup() {
  local rc=$?
  set +e
  for p in "${LOOPS[@]}" ${CAPTURE:-}; do kill "$p" 2>/dev/null; done
  if [ "$NODE_STARTED" = 1 ]; then
    # down.sh deletes every pod first; Portway's state goes with the uninstall step (or here, on failure)
    "$NODE/down.sh" >/dev/null 2>&1
    [ -e /sys/fs/bpf/portway ] && "$ROOT/.build/e2e-node-portway" cleanup --bpffs /sys/fs/bpf/portway >/dev/null 2>&1
  fi
  [ -n "$MIGRATE_REQ" ] && sysctl -qw net.ipv4.tcp_migrate_req="$MIGRATE_REQ"
  host_state >"$WORK/host.after"
  if ! diff -u "$WORK/host.before" "$WORK/host.after" >&2; then
    echo "e2e-node: the host is not as it was (above)" >&2
    rc=1
  fi
  if [ $rc = 0 ]; then rm -rf "$WORK"; else echo "e2e-node: work files kept in $WORK" >&2; fi
  exit $rc
}
trap cleanup EXIT
# A copy of the binary from the image's build, for cleanup on failure (the pods are gone by then).
install -m 0755 "$ROOT/.build/release/portway" "$ROOT/.build/e2e-node-portway" 2>/dev/null || true

# ---- 1. the node, the image, the CRDs
log "node up (kube-proxy off)"
export PORTWAY_NODE_KUBE_PROXY=0
NODE_STARTED=1
eval "$("$NODE/up.sh")"
[ -n "${KUBECONFIG:-}" ] || fail "up.sh gave no KUBECONFIG"
CTR=(ctr --address "${PORTWAY_NODE_DIR:-/var/lib/portway-node}/run/containerd/containerd.sock" -n k8s.io)
log "loading $TAR ($REF) and tagging it $UPGRADED for the upgrade"
"$NODE/load-image.sh" "$TAR" >/dev/null 2>&1 || fail "load-image.sh $TAR"
"${CTR[@]}" images tag --force "$REF" "$UPGRADED" >/dev/null || fail "ctr images tag"
log "Gateway API CRDs from $CRDS (without x-kubernetes-validations: this apiserver predates CEL)"
for f in "$CRDS"/*.yaml; do
  # drop each `x-kubernetes-validations:` key with its list (deeper lines, or "- " at its indent)
  awk '{ match($0, /^ */); ind = RLENGTH }
       skip && (ind > sind || (ind == sind && substr($0, ind + 1, 2) == "- ")) { next }
       { skip = 0 }
       /^ *x-kubernetes-validations:/ { skip = 1; sind = ind; next }
       { print }' "$f"
  echo "---"
done >"$WORK/crds.yaml"
kubectl create -f "$WORK/crds.yaml" >/dev/null || fail "installing the Gateway API CRDs"
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null || fail "CRDs not established"

# ---- 2. dry run, then the README's install steps
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
hostport=${server#https://}
API_HOST=${hostport%:*} API_PORT=${hostport##*:}
mkdir -p "$WORK/manifests" "$WORK/deploy"
for f in manifests/*.yaml; do sed "s|ghcr.io/portway/portway:[^ ]*|$REF|" "$f" >"$WORK/manifests/$(basename "$f")"; done
sed "s|ghcr.io/portway/portway:[^ ]*|$REF|" deploy/uninstall.yaml >"$WORK/deploy/uninstall.yaml"
log "install: namespace, the API server's address ($API_HOST:$API_PORT), server-side dry run of every manifest"
kubectl create namespace portway-system >/dev/null
kubectl -n portway-system create configmap portway-apiserver \
  --from-literal=KUBERNETES_SERVICE_HOST="$API_HOST" --from-literal=KUBERNETES_SERVICE_PORT="$API_PORT" >/dev/null
kubectl apply --dry-run=server -f "$WORK/manifests/" -f "$WORK/deploy/uninstall.yaml" >"$WORK/dry-run.txt" 2>&1 ||
  { cat "$WORK/dry-run.txt" >&2; fail "server-side dry run of the manifests"; }
log "kubectl apply -f manifests/"
kubectl apply -f "$WORK/manifests/" >/dev/null || fail "kubectl apply -f manifests/"
kubectl -n portway-system rollout status ds/portway --timeout=180s >/dev/null || fail "the DaemonSet did not roll out"
kubectl -n portway-system wait --for=condition=Ready pod -l app.kubernetes.io/name=portway --timeout=60s >/dev/null ||
  fail "the agent pod is not Ready"
log "the DaemonSet pod is Ready"

# ---- 3. workloads and traffic
BUSYBOX=localhost/busybox:node
# A Deployment of busybox httpd pods answering "<name> <pod name>" on :8080.
web_deployment() {
    cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: $NS}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $BUSYBOX
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "mkdir -p /www && echo \"$1 \$HOSTNAME\" >/www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
EOF
}
kubectl apply -f - >/dev/null <<EOF || fail "applying the workloads"
apiVersion: v1
kind: Namespace
metadata: {name: $NS}
---
$(web_deployment a 2)
---
$(web_deployment b 1)
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: $NS}
spec:
  type: NodePort
  selector: {app: a}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: $NS}
spec:
  selector: {app: b}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: $NS}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: $BUSYBOX
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: $NS}
spec:
  gatewayClassName: portway
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: $NS}
spec:
  parentRefs: [{name: web}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: a, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: $NS}
spec:
  parentRefs: [{name: web}]
  hostnames: [b.example.com]
  rules: [{backendRefs: [{name: b, port: 80}]}]
EOF
kubectl -n $NS rollout status deploy/a --timeout=120s >/dev/null || fail "deployment a"
kubectl -n $NS rollout status deploy/b --timeout=120s >/dev/null || fail "deployment b"
kubectl -n $NS wait --for=condition=Ready pod/client --timeout=60s >/dev/null || fail "client pod"
NODE_IP=$PORTWAY_NODE_IP
NP=$(kubectl -n $NS get svc a -o jsonpath='{.spec.ports[0].nodePort}')
CIP_B=$(kubectl -n $NS get svc b -o jsonpath='{.spec.clusterIP}')
retry() { local n=$1 i; shift; for i in $(seq "$n"); do "$@" && return 0; sleep 0.5; done; return 1; }
from_ext() { ip netns exec knode-ext curl -s --max-time 3 "$@"; }
np_ok() { from_ext "http://$NODE_IP:$NP/" | grep -q '^a a-'; }
retry 60 np_ok || fail "NodePort $NODE_IP:$NP from outside the node (netns knode-ext)"
log "ok: NodePort $NODE_IP:$NP from outside the node reaches the Deployment's pods"
in_pod() { kubectl -n $NS exec client -- sh -c "$1" 2>/dev/null; }
cip_ok() { in_pod "printf 'GET / HTTP/1.0\r\nHost: b\r\n\r\n' | nc -w 3 $CIP_B 80" | grep -q '^b b-'; }
retry 40 cip_ok || fail "ClusterIP $CIP_B:80 from a pod"
log "ok: a pod reaches the ClusterIP Service b ($CIP_B:80)"
# The apiserver answers plain HTTP on its TLS port with a 400 that says so: the TCP path works.
api_ok() { in_pod "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 10.96.0.1 443" | grep -q 'HTTP/1.0 400'; }
retry 40 api_ok || fail "the kubernetes Service 10.96.0.1:443 from a pod"
log "ok: a pod reaches the kubernetes Service (10.96.0.1:443)"
gw_np() { kubectl -n $NS get svc portway-gw-web -o jsonpath='{.spec.ports[0].nodePort}' 2>/dev/null; }
has_gw_np() { [ -n "$(gw_np)" ]; }
retry 60 has_gw_np || fail "the Gateway's Service portway-gw-web was not created"
GNP=$(gw_np)
gw_host() { from_ext -H "Host: $1" "http://$NODE_IP:$GNP/"; }
retry 60 sh -c "ip netns exec knode-ext curl -s --max-time 3 -H 'Host: a.example.com' http://$NODE_IP:$GNP/ | grep -q '^a a-'" ||
  fail "Gateway NodePort $GNP with Host a.example.com"
gw_host b.example.com | grep -q '^b b-' || fail "Gateway NodePort $GNP with Host b.example.com"
[ "$(from_ext -o /dev/null -w '%{http_code}' -H 'Host: nobody.example.com' "http://$NODE_IP:$GNP/")" = 404 ] ||
  fail "Gateway: an unknown host should get 404"
log "ok: the Gateway routes by Host through its NodePort $GNP (a, b; unknown: 404)"
curl -s --max-time 3 "http://127.0.0.1:9966/metrics" >"$WORK/metrics.txt" || fail "scraping /metrics on :9966"
for m in 'portway_build_info{version="' portway_frontends portway_map_entries portway_map_capacity portway_sync_duration_seconds_bucket \
  portway_programmed_generation 'portway_proxy_requests_total{route="'"$NS"'/a/rule0",code="200"}' portway_gateway_leader; do
  grep -qF "$m" "$WORK/metrics.txt" || fail "/metrics lacks $m"
done
log "ok: /metrics scraped ($(grep -c '^portway_' "$WORK/metrics.txt") series)"
kubectl -n portway-system logs ds/portway >"$WORK/agent.log" 2>&1
python3 - "$WORK/agent.log" <<'PY' || fail "kubectl logs: not structured (JSON) lines"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no lines"
for l in lines:
    o = json.loads(l)
    assert {"time", "level", "logger", "msg"} <= set(o), l
assert any("starting on node" in json.loads(l)["msg"] for l in lines), "no start line"
PY
log "ok: kubectl logs shows JSON lines ($(wc -l <"$WORK/agent.log")), with the start line: $(grep -o '"msg":"portway [^"]*' "$WORK/agent.log" | head -1 | cut -c8-)"

# ---- 4. zero failures through an upgrade, a pod delete and a SIGKILL
if [ -n "${PORTWAY_E2E_NODE_PAUSE:-}" ]; then   # debugging: look around, then remove the file to go on
  touch "$PORTWAY_E2E_NODE_PAUSE"
  log "paused until $PORTWAY_E2E_NODE_PAUSE is removed (KUBECONFIG=$KUBECONFIG; Gateway $NODE_IP:$GNP, NodePort $NODE_IP:$NP)"
  while [ -e "$PORTWAY_E2E_NODE_PAUSE" ]; do sleep 1; done
fi
# The agents' logs as they run (a replaced pod's go with it): kept in $WORK/pods on failure.
( while [ ! -e "$WORK/loop-gateway-new.stop" ]; do
    cp -r /var/log/pods/portway-system_* "$WORK/pods/" 2>/dev/null; sleep 0.5
  done ) &
mkdir -p "$WORK/pods"
LOOPS+=($!)
# Gateway packets on the uplink while the agent is replaced (kept with the work files on failure).
CAPTURE=
if command -v tcpdump >/dev/null; then
  tcpdump -ni knode0 -s 128 -w "$WORK/gateway.pcap" "tcp port $GNP" >/dev/null 2>&1 &
  CAPTURE=$!
fi
# Default sysctls: at 50 new connections a second the client soon reuses a port whose previous
# connection the proxy closed less than 60 s ago; the node recycles that TIME_WAIT socket for the
# new SYN, through the Gateway's redirect too (docs/OPERATING.md, "A reused client port meets the
# proxy's TIME_WAIT socket"). A stalled SYN shows as a failed or slow request in the loops.
start_loop() { # NAME URL HOST MODE
  ip netns exec knode-ext python3 "$ROOT/scripts/e2e-node-loop.py" "$2" "$3" "$4" "$WORK/loop-$1" &
  LOOPS+=($!)
}
start_loop nodeport-new "http://$NODE_IP:$NP/" a "new"
start_loop nodeport-keepalive "http://$NODE_IP:$NP/" a "keepalive"
start_loop gateway-new "http://$NODE_IP:$GNP/" a.example.com "new"
start_loop gateway-keepalive "http://$NODE_IP:$GNP/" b.example.com "keepalive"
sleep 3
agent_pod() { kubectl -n portway-system get pods -l app.kubernetes.io/name=portway -o jsonpath='{.items[0].metadata.name}'; }
agent_pods() { kubectl -n portway-system get pods -l app.kubernetes.io/name=portway -o jsonpath='{.items[*].metadata.name}'; }
one_agent_pod() { [ "$(kubectl -n portway-system get pods -l app.kubernetes.io/name=portway --no-headers | wc -l)" = 1 ]; }
replaced() { local pods; pods=$(agent_pods); [ -n "$pods" ] && [ "$pods" != "$1" ] && ! echo "$pods" | grep -qw "$1"; }
ready_again() {
  kubectl -n portway-system rollout status ds/portway --timeout=180s >/dev/null &&
    kubectl -n portway-system wait --for=condition=Ready pod -l app.kubernetes.io/name=portway --timeout=120s >/dev/null
}
log "kubectl set image ds/portway agent=$UPGRADED (maxSurge 1: the new agent takes over beside the old one)"
old=$(agent_pod)
kubectl -n portway-system set image ds/portway agent="$UPGRADED" >/dev/null
ready_again || fail "the rolling update did not finish"
retry 60 one_agent_pod || fail "the old agent pod did not go"
[ "$(agent_pod)" != "$old" ] || fail "the agent pod was not replaced"
[ "$(kubectl -n portway-system get pod "$(agent_pod)" -o jsonpath='{.spec.containers[0].image}')" = "$UPGRADED" ] || fail "not running $UPGRADED"
log "upgraded: $old -> $(agent_pod)"
sleep 3
log "kubectl delete pod (SIGTERM)"
old=$(agent_pod)
kubectl -n portway-system delete pod "$old" --wait=false >/dev/null
retry 120 replaced "$old" || fail "the deleted agent pod was not replaced"
ready_again || fail "the agent did not come back after the pod delete"
retry 60 one_agent_pod || fail "the deleted pod did not go"
log "replaced: $old -> $(agent_pod)"
sleep 3
pod=$(agent_pod)
cid=$(kubectl -n portway-system get pod "$pod" -o jsonpath='{.status.containerStatuses[0].containerID}')
cid=${cid#containerd://}
pid=$("${CTR[@]}" tasks ls | awk -v id="$cid" '$1 == id {print $2}')
[ -n "$pid" ] || fail "no task for the agent container $cid"
restarts=$(kubectl -n portway-system get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')
log "SIGKILL of the agent container (pid $pid)"
kill -KILL "$pid"
restarted() { [ "$(kubectl -n portway-system get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')" -gt "$restarts" ]; }
retry 120 restarted || fail "the agent container was not restarted"
ready_again || fail "the agent did not come back after SIGKILL"
log "restarted after SIGKILL"
sleep 3
for l in nodeport-new nodeport-keepalive gateway-new gateway-keepalive; do touch "$WORK/loop-$l.stop"; done
for p in "${LOOPS[@]}"; do wait "$p" || true; done
LOOPS=()
[ -n "$CAPTURE" ] && kill "$CAPTURE" 2>/dev/null
total_failures=0
for l in nodeport-new nodeport-keepalive gateway-new gateway-keepalive; do
  read -r _ n _ f _ r _ t _ ms <"$WORK/loop-$l" || fail "loop $l wrote no result"
  log "loop $l: $n requests, $f failed, $r reconnects, $t retried (lost in flight), slowest ${ms} ms"
  [ "$t" = 0 ] || sed 's/^/    /' "$WORK/loop-$l.errors" >&2
  [ "$n" -gt 100 ] || fail "loop $l made only $n requests"
  if [ "$f" != 0 ]; then head -5 "$WORK/loop-$l.errors" >&2; total_failures=$((total_failures + f)); fi
done
[ "$total_failures" = 0 ] || fail "$total_failures failed requests through the upgrade, the pod delete and the SIGKILL"
log "ok: zero failed requests through the upgrade, the pod delete and the SIGKILL"

# ---- 5. uninstall (docs/OPERATING.md), and nothing left
kubectl delete namespace $NS --wait=false >/dev/null
log "uninstall: delete the DaemonSet, run deploy/uninstall.yaml on every node, delete both"
kubectl -n portway-system delete daemonset portway --wait=true --timeout=60s >/dev/null || fail "deleting the DaemonSet"
no_agent_pod() { [ -z "$(kubectl -n portway-system get pods -l app.kubernetes.io/name=portway -o name)" ]; }
retry 60 no_agent_pod || fail "the agent pod did not go"
kubectl apply -f "$WORK/deploy/uninstall.yaml" >/dev/null || fail "applying deploy/uninstall.yaml"
kubectl -n portway-system rollout status ds/portway-cleanup --timeout=120s >/dev/null || fail "the cleanup DaemonSet did not run"
kubectl -n portway-system logs ds/portway-cleanup -c cleanup >"$WORK/cleanup.log" 2>&1 || true
kubectl delete -f "$WORK/deploy/uninstall.yaml" -f "$WORK/manifests/" --wait=true --timeout=120s >/dev/null 2>&1 || true
left=""
[ -e /sys/fs/bpf/portway ] && left="$left pins(/sys/fs/bpf/portway)"
ip rule | grep -q 'lookup 2005' && left="$left policy-rule"
[ -n "$(ip route show table 2005 2>/dev/null)" ] && left="$left table-2005-routes"
for dev in knode0 $(ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1); do
  bpftool net show dev "$dev" 2>/dev/null | grep -q 'pw_' && left="$left tc($dev)"
done
cg=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[ -n "$cg" ] && bpftool cgroup show "$cg" 2>/dev/null | grep -q 'pw_sock' && left="$left cgroup($cg)"
[ -z "$left" ] || { cat "$WORK/cleanup.log" >&2; fail "left on the node after the uninstall:$left"; }
log "ok: uninstall left no programs, links, pins, policy-routing rules or routes ($(tr '\n' ' ' <"$WORK/cleanup.log"))"
log "e2e-node passed in $(($(date +%s) - T0)) s"
echo "E2E-NODE PASSED in $(($(date +%s) - T0)) s"
