#!/usr/bin/env bash
# Benchmarks, built in release mode. Each line reports Portway against a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product portway-bench
swift build -c release --product portway
.build/release/portway-bench
./scripts/bench-datapath.sh
PORTWAY="$(swift build -c release --show-bin-path)/portway" ./scripts/bench-l7.sh
# Route change → first routed request: the e2e test on the real kube-apiserver with the release
# agent (it prints the line; the test itself asserts only that every edit reaches the traffic).
if [ -z "${KUBEBUILDER_ASSETS:-}" ] && [ -x ../shared/kube/assets.sh ]; then eval "$(../shared/kube/assets.sh)"; fi
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ "$(id -u)" = 0 ]; then
  export KUBEBUILDER_ASSETS
  make bpf >/dev/null
  swift build --build-tests >/dev/null
  PORTWAY_BIN="$(swift build -c release --show-bin-path)/portway" PORTWAY_BPF_DIR="$PWD/bpf/out" \
    swift test --skip-build --filter RouteChangeLatencyTests 2>&1 | grep -E "^route change|✘" || true
  # The agent's memory: the release binary syncing 10k Services x 10 endpoints from the real API server.
  PORTWAY_BENCH_MEMORY=1 PORTWAY_BIN="$(swift build -c release --show-bin-path)/portway" \
    swift test --skip-build --filter AgentMemoryBenchTests 2>&1 | grep -E "^agent memory|^AgentMemoryBenchTests|✘" || true
else
  echo "route change → first routed request, agent memory: skipped (needs root and the real control plane: ../shared/kube/assets.sh or KUBEBUILDER_ASSETS)"
fi
