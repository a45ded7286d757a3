#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer driver portway-fuzz (-sanitize=fuzzer,address, scratch path
# .build-fuzz) and runs each target with it for FUZZ_SECONDS (default 60) at low priority, one after
# the other, with LeakSanitizer on (a leak fails the run like a crash). New inputs go to
# .build-fuzz/corpus/TARGET (the checked-in fuzz/corpus/TARGET is only read); crashes are written
# to fuzz/crashes/ and make the run fail: minimise one, add it to fuzz/corpus/TARGET as
# regress-NAME, and fix the bug. Usage: scripts/fuzz.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
SWIFT=${SWIFT:-swift}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(yaml-file watch-stream kubeconfig translator lb-listing proxy-request regex)

PORTWAY_FUZZ=1 nice -n 19 "$SWIFT" build --scratch-path .build-fuzz --product portway-fuzz -Xswiftc -sanitize=fuzzer,address

mkdir -p fuzz/crashes
failed=()
summary=""
for t in "${TARGETS[@]}"; do
  work=.build-fuzz/corpus/$t
  mkdir -p "$work"
  log=.build-fuzz/fuzz-$t.log
  echo "== fuzz-$t for ${SECONDS_EACH}s"
  set +e
  nice -n 19 .build-fuzz/debug/portway-fuzz "$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="fuzz/crashes/$t-" "$work" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 || true)
  runs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  line="fuzz-$t: ${SECONDS_EACH}s, ${runs:-?} executions, $(echo "$done_line" | grep -oE 'cov: [0-9]+ ft: [0-9]+' || echo 'cov: ?'), exit $rc"
  echo "$line"
  summary+="$line"$'\n'
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    grep -E 'ERROR|Fatal error|SUMMARY|Test unit written' "$log" | head -5 || true
  fi
done
echo
echo "$summary"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashes or leaks in: ${failed[*]} (inputs in fuzz/crashes/, logs in .build-fuzz/fuzz-TARGET.log)"
  exit 1
fi
