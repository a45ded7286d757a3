#!/usr/bin/env bash
# Benchmarks, built in release mode. Each line reports Portway against a baseline measured in the same run;
# at the end, every `target |` row the parts printed is gathered into issue 20's targets table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp /tmp/portway-bench.XXXXXX)
trap 'rm -f "$OUT"' EXIT
swift build -c release --product portway-bench
swift build -c release --product portway
PORTWAY_BIN="$(swift build -c release --show-bin-path)/portway"
{
  .build/release/portway-bench
  ./scripts/bench-datapath.sh
  # One proxy thread against one nginx worker, then two against two (how both scale on this machine).
  for threads in 1 2; do PORTWAY="$PORTWAY_BIN" THREADS=$threads ./scripts/bench-l7.sh; done
  # Route change → first routed request: the e2e test on the real kube-apiserver with the release
  # agent (it prints the line; the test itself asserts only that every edit reaches the traffic).
  if [ -z "${KUBEBUILDER_ASSETS:-}" ] && [ -x ../shared/kube/assets.sh ]; then eval "$(../shared/kube/assets.sh)"; fi
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ "$(id -u)" = 0 ]; then
    export KUBEBUILDER_ASSETS
    make bpf >/dev/null
    swift build --build-tests >/dev/null
    PORTWAY_BIN="$PORTWAY_BIN" PORTWAY_BPF_DIR="$PWD/bpf/out" \
      swift test --skip-build --filter RouteChangeLatencyTests 2>&1 | grep -E "^route change|^target \||✘" || true
    # The agent's memory: the release binary syncing 10k Services x 10 endpoints from the real API server.
    PORTWAY_BENCH_MEMORY=1 PORTWAY_BIN="$PORTWAY_BIN" \
      swift test --skip-build --filter AgentMemoryBenchTests 2>&1 | grep -E "^agent memory|^target \||^AgentMemoryBenchTests|✘" || true
  else
    echo "route change → first routed request, agent memory: skipped (needs root and the real control plane: ../shared/kube/assets.sh or KUBEBUILDER_ASSETS)"
  fi
} 2>&1 | tee "$OUT"

echo
echo "## Issue 20's targets, this run ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| figure | Portway | reference, same run | target | met |"
echo "| --- | --- | --- | --- | --- |"
grep '^target |' "$OUT" | sed 's/^target //' || echo "| (no target rows: every part was skipped) | | | | |"
met=$(grep -c '^target |.*| yes |$' "$OUT" || true)
all=$(grep -c '^target |' "$OUT" || true)
echo
echo "$met of $all targets met in this run."
