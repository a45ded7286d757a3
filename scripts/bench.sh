#!/usr/bin/env bash
# Benchmarks, built in release mode. Each line reports Portway against a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product portway-bench
swift build -c release --product portway
.build/release/portway-bench
./scripts/bench-datapath.sh
PORTWAY="$(swift build -c release --show-bin-path)/portway" ./scripts/bench-l7.sh
