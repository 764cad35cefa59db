#!/usr/bin/env bash
# Bulk transfers through a route in constant memory (issue 17): a 1 GiB upload (known length, then chunked) and a
# 1 GiB download through `warden serve`'s mutual-TLS listener, and a download read by a slow client (1 MiB/s for
# 5 s). Samples the server's resident memory every 50 ms and prints its growth over the idle server for each.
# Needs: nginx, curl, python3. Not part of CI (a release build and several GiB over loopback).
# Usage: bash Benchmarks/gateway/bulk.sh [--size-mib 1024]
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=1024
[ "${1:-}" = "--size-mib" ] && SIZE_MIB=$2
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }
BIN=${BIN:-.build/release}
if [ -z "${SKIP_BUILD:-}" ]; then
    swift build -c release --product warden
    swift build -c release --product GatewayBenchmark
fi
WORK=$(mktemp -d /tmp/warden-bulk.XXXXXX)
echo "work directory: $WORK"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/upstream.pid" ] && kill "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
}
trap cleanup EXIT

# The download source: nginx serving a sparse file. The upload sink: a Python server that reads every byte.
truncate -s "${SIZE_MIB}M" "$WORK/big.bin"
chmod 755 "$WORK" && chmod 644 "$WORK/big.bin"  # nginx workers run as another user
mkdir -p "$WORK/upstream"
cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
pid $WORK/upstream.pid;
error_log $WORK/upstream.error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/upstream/body; proxy_temp_path $WORK/upstream/proxy;
    fastcgi_temp_path $WORK/upstream/fcgi; uwsgi_temp_path $WORK/upstream/uwsgi; scgi_temp_path $WORK/upstream/scgi;
    server {
        listen 127.0.0.1:18080;
        location /hello { default_type text/plain; return 200 "hello from upstream\n"; }
        location /big { alias $WORK/big.bin; default_type application/octet-stream; }
        location /sink {
            client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;
            proxy_http_version 1.1; proxy_pass http://127.0.0.1:18082;
        }
    }
}
CONF
nginx -c "$WORK/upstream.conf" -p "$WORK/upstream"
cat > "$WORK/sink.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""): pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 1 << 16)); left -= len(b); n += len(b)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 1 << 16))
                if not b: break
                left -= len(b); n += len(b)
        body = str(n).encode() + b"\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18082), Sink).serve_forever()
PY
python3 "$WORK/sink.py" &
pids+=($!)

$BIN/GatewayBenchmark setup --dir "$WORK" --agents 1 >/dev/null
# The agent's token is scoped to route `bench`: that route takes bodies of the whole size and a long deadline.
sed -i "s|  bench: {upstream: \"http://127.0.0.1:18080\", segment: bench}|  bench: {upstream: \"http://127.0.0.1:18080\", segment: bench, max_body_bytes: $(( (SIZE_MIB + 1) * 1048576 )), timeout: 600s}|" "$WORK/warden.yaml"
grep -q "max_body_bytes: $(( (SIZE_MIB + 1) * 1048576 ))" "$WORK/warden.yaml"
$BIN/warden serve --config "$WORK/warden.yaml" > "$WORK/warden.log" 2>&1 &
SERVER=$!
pids+=($SERVER)
for _ in $(seq 1 200); do curl -fsS http://127.0.0.1:18443/readyz >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$(python3 -c "import json,sys; print(json.load(open('$WORK/tokens.json'))[0]['mtls_token'])")
CURL=(curl -sS --fail --cert "$WORK/svid.pem" --key "$WORK/svid.key" --cacert "$WORK/bundle.pem"
    -H "Authorization: Bearer $TOKEN")
BASE=https://127.0.0.1:18444
rss() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
# Warm the server up (connections, caches) before the idle figure.
for _ in 1 2 3; do "${CURL[@]}" -o /dev/null "$BASE/r/bench/hello"; done
IDLE=$(rss)
echo "idle server: $((IDLE / 1024)) MiB resident"
measure() {  # label, command...
    local label=$1; shift
    local peak=$IDLE start end
    start=$(date +%s.%N)
    "$@" > "$WORK/out" &
    local job=$!
    while kill -0 "$job" 2>/dev/null; do
        local r; r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
        sleep 0.05
    done
    wait "$job"
    end=$(date +%s.%N)
    local secs; secs=$(python3 -c "print(f'{$end - $start:.1f}')")
    printf '%-44s %6.1f s  peak RSS +%d MiB  (%s)\n' "$label" "$secs" $(( (peak - IDLE) / 1024 )) "$(head -c 60 "$WORK/out" | tr -d '\n')"
}
measure "upload ${SIZE_MIB} MiB, known length" "${CURL[@]}" -T "$WORK/big.bin" -X POST "$BASE/r/bench/sink"
measure "upload ${SIZE_MIB} MiB, chunked" sh -c "head -c $((SIZE_MIB * 1048576)) /dev/zero | $(printf '%q ' "${CURL[@]}") -T - -X POST $BASE/r/bench/sink"
measure "download ${SIZE_MIB} MiB" sh -c "$(printf '%q ' "${CURL[@]}") $BASE/r/bench/big | wc -c"
measure "download read at 1 MiB/s for 5 s (slow client)" sh -c "timeout 5 $(printf '%q ' "${CURL[@]}") --limit-rate 1M $BASE/r/bench/big | wc -c"
echo "after: $(( $(rss) / 1024 )) MiB resident"
