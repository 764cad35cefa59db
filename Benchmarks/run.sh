#!/usr/bin/env bash
# Runs the policy-evaluation benchmark side by side: the native Swift engine (release build) and the Rust engine
# through cedarpy 4.12.2, on the same workload, in one run. Not part of CI (it builds in release mode).
set -euo pipefail
cd "$(dirname "$0")/.."
out=Benchmarks/workload/out
sizes=${SIZES:-10,100,1000,10000}
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install --quiet cedarpy==4.12.2; }
.venv/bin/python Benchmarks/workload/gen_workload.py --out "$out" --seed 7
echo "== Rust engine (cedarpy 4.12.2, authz_duration_micros)"
.venv/bin/python Benchmarks/workload/cedarpy_bench.py "$out" --sizes "$sizes"
swift build -c release --product CedarBenchmark >/dev/null
echo "== Swift engine (Warden Cedar, release build)"
"$(swift build -c release --show-bin-path)/CedarBenchmark" "$out" --sizes "$sizes"
