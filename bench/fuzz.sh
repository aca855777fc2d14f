#!/usr/bin/env bash
# A longer fuzzing campaign than CI's: builds the libFuzzer targets as .ci/fuzz does, runs each for
# SECONDS (default 180) on a copy of its seed corpus, and prints for each the executions, the
# coverage reached (cov: edges, ft: features, as libFuzzer counts them), the corpus it grew and
# the crashes, as a Markdown table. Artifacts of a crash stay in the work directory it names.
#   bench/fuzz.sh [SECONDS] [TARGET...]      e.g. bench/fuzz.sh 300 keyfile jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-180}
shift || true
./.ci/deps --fuzz
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DFLEETKEY_FUZZ=ON -DFLEETKEY_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for bin in build-fuzz/tests/fuzz/fuzz_*; do
    name=$(basename "$bin")
    targets+=("${name#fuzz_}")
  done
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/fleetkey-fuzz.XXXXXX")
echo "fuzz: ${seconds}s per target, work directory $work, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "| target | seconds | executions | exec/s | cov (edges) | ft (features) | corpus (seeds → end) | crashes |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for name in "${targets[@]}"; do
  corpus=$work/$name
  mkdir -p "$corpus" "$work/$name.artifacts"
  cp tests/fuzz/corpus/"$name"/* "$corpus"/
  seeds=$(find "$corpus" -type f | wc -l)
  log=$work/$name.log
  status=0
  "build-fuzz/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$work/$name.artifacts/" "$corpus" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  end=$(find "$corpus" -type f | wc -l)
  crashes=$(find "$work/$name.artifacts" -type f | wc -l)
  [ "$status" -eq 0 ] || crashes="$crashes (exit $status, see $log)"
  echo "| $name | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $seeds → $end | $crashes |"
done
