#!/usr/bin/env bash
# The gateway benchmark (README, "Performance"): one run, the same upstream (nginx returning a small body, one
# worker), at 1, 16 and 64 keep-alive connections, through four paths:
#   direct  - the upstream itself (127.0.0.1:18080)
#   nginx   - Debian's nginx as a plain reverse proxy, one worker, keep-alive upstream (127.0.0.1:18081)
#   dpop    - warden serve, DPoP-bound tokens, a fresh proof per request (127.0.0.1:18443)
#   mtls    - warden serve's mutual-TLS listener, certificate-bound tokens (127.0.0.1:18444)
# Needs: nginx (apt-get install nginx-light, or nginx). Not part of CI (a release build and a minute of load).
# Usage: bash Benchmarks/gateway/run.sh [--seconds 5] [--connections 1,16,64] [--targets direct,nginx,dpop,mtls]
#        bash Benchmarks/gateway/run.sh --rates 1000,3000   (open loop: fixed request rates, latency from when each was due)
#        bash Benchmarks/gateway/run.sh soak [--seconds 600] (DPoP at 16 connections; the server's resident memory over time)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }
# BIN=DIR: binaries built elsewhere (a before/after comparison of two commits); otherwise a release build here.
if [ -z "${BIN:-}" ]; then
    swift build -c release --product warden
    swift build -c release --product GatewayBenchmark
    BIN=.build/release
fi
WORK=$(mktemp -d /tmp/warden-gwbench.XXXXXX)
echo "work directory: $WORK"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for c in upstream proxy; do [ -f "$WORK/$c.pid" ] && kill "$(cat "$WORK/$c.pid")" 2>/dev/null || true; done
}
trap cleanup EXIT

nginx_conf() {  # name, listen port, location body
    mkdir -p "$WORK/$1"
    cat > "$WORK/$1.conf" <<CONF
worker_processes 1;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/$1/body; proxy_temp_path $WORK/$1/proxy;
    fastcgi_temp_path $WORK/$1/fcgi; uwsgi_temp_path $WORK/$1/uwsgi; scgi_temp_path $WORK/$1/scgi;
    keepalive_requests 10000000;
    upstream bench_upstream { server 127.0.0.1:18080; keepalive 128; }
    server {
        listen 127.0.0.1:$2;
        location / { $3 }
    }
}
CONF
    nginx -c "$WORK/$1.conf" -p "$WORK/$1"
}
nginx_conf upstream 18080 'default_type text/plain; return 200 "hello from upstream\n";'
nginx_conf proxy 18081 'proxy_pass http://bench_upstream; proxy_http_version 1.1; proxy_set_header Connection "";'

$BIN/GatewayBenchmark setup --dir "$WORK" --agents 16
$BIN/warden serve --config "$WORK/warden.yaml" > "$WORK/warden.log" 2>&1 &
pids+=($!)
# /readyz: proofs made in the first seconds after a start need the server's nonce (the restart replay guard).
for _ in $(seq 1 200); do curl -fsS http://127.0.0.1:18443/readyz >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS http://127.0.0.1:18080/hello >/dev/null && curl -fsS http://127.0.0.1:18081/hello >/dev/null
cpu_ticks() { awk '{print $14 + $15}' "/proc/${pids[0]}/stat"; }
gateway_requests() {
    curl -fsS http://127.0.0.1:18443/metrics | awk '/^warden_gateway_requests_total/ {n += $NF} END {printf "%d", n}'
}
ticks0=$(cpu_ticks); requests0=$(gateway_requests)
# Where the two cores go over the run: each process's CPU time divided by the wall time (cores in use on average).
proc_ticks() { awk '{t += $14 + $15} END {print t + 0}' $(for p in "$@"; do echo "/proc/$p/stat"; done) 2>/dev/null; }
workers() { pgrep -P "$(cat "$WORK/$1.pid")" | tr '\n' ' '; }
# (`times` in this shell, not in a command substitution's subshell: its second line is what this shell's children used.)
child_seconds() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"; }
up_workers=$(workers upstream); proxy_workers=$(workers proxy)
up0=$(proc_ticks $up_workers); proxy0=$(proc_ticks $proxy_workers); times > "$WORK/times0"; client0=$(child_seconds "$WORK/times0"); wall0=$(date +%s.%N)
if [ "${1:-}" = soak ]; then
    # bash Benchmarks/gateway/run.sh soak [--seconds 600] [--connections 16]: resident memory over a long DPoP run.
    shift
    $BIN/GatewayBenchmark soak --dir "$WORK" --server-pid "${pids[0]}" "$@"
else
    $BIN/GatewayBenchmark run --dir "$WORK" "$@"
fi
# The server's user+system CPU over the run per gateway request it counted (steadier than throughput on a shared VM).
ticks1=$(cpu_ticks); requests1=$(gateway_requests)
awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v n=$((requests1 - requests0)) \
    'BEGIN { if (n > 0) printf "server CPU per gateway request: %.0f µs (%d requests, %.2f s of CPU)\n", t / hz / n * 1e6, n, t / hz }'
up1=$(proc_ticks $up_workers); proxy1=$(proc_ticks $proxy_workers); times > "$WORK/times1"; client1=$(child_seconds "$WORK/times1"); wall1=$(date +%s.%N)
awk -v hz="$(getconf CLK_TCK)" -v t0="$wall0" -v t1="$wall1" -v cores="$(nproc)" \
    -v w=$((ticks1 - ticks0)) -v u=$((up1 - up0)) -v p=$((proxy1 - proxy0)) -v c="$client0" -v c1="$client1" \
    'BEGIN { wall = t1 - t0; printf "cores in use over the run (of %d): warden %.2f, benchmark client %.2f, upstream nginx %.2f, proxy nginx %.2f\n",
             cores, w / hz / wall, (c1 - c) / wall, u / hz / wall, p / hz / wall }'
