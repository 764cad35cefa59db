#!/usr/bin/env bash
# Warden end to end in one command (after `swift build`): a ticket service and a knowledge-base MCP server behind
# Warden, a node agent (`warden node`, the SPIFFE Workload API) that attests the support bot's process by the kernel,
# the bot calling both through the sidecar (`warden agent proxy --socket`, its identity from the node) with no
# credentials or keys in the bot, one refused call of each kind, where the evidence is, and the posture report.
# WARDEN_DEMO_OUT=DIR keeps the report (posture.md, posture.html) there. Everything runs on loopback in a
# temporary directory and is stopped at the end.
#
#   bash examples/demo/run.sh
#
# Needs: the built `warden` (.build/debug/warden, or $WARDEN_BIN) and a Python with the MCP SDK ($WARDEN_DEMO_PYTHON;
# otherwise a virtual environment is made in examples/demo/.venv with `pip install mcp==2.3.0`).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
W=${WARDEN_BIN:-$ROOT/.build/debug/warden}
[ -x "$W" ] || { echo "demo: $W is not built; run swift build first" >&2; exit 1; }

PY=${WARDEN_DEMO_PYTHON:-}
if [ -z "$PY" ]; then
  if [ ! -x examples/demo/.venv/bin/python ]; then
    echo "demo: making examples/demo/.venv with the MCP SDK (once)"
    python3 -m venv examples/demo/.venv
    examples/demo/.venv/bin/pip install --quiet --disable-pip-version-check mcp==2.3.0
  fi
  PY=$ROOT/examples/demo/.venv/bin/python
fi
"$PY" -c 'import mcp' 2>/dev/null || { echo "demo: $PY has no MCP SDK (pip install mcp==2.3.0)" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  # A process started with SIGTERM blocked (some launchers do that) gets SIGKILL after five seconds.
  for _ in $(seq 50); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL: until it answers (at most 60 s)
  for _ in $(seq 600); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done
  echo "demo: $1 did not answer" >&2; exit 1
}
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

TICKETS_PORT=$(free_port); WARDEN_PORT=$(free_port); PROXY_PORT=$(free_port)
S=http://127.0.0.1:$WARDEN_PORT
P=http://127.0.0.1:$PROXY_PORT
ADMIN=(--server "$S" --admin-token-file "$WORK/data/admin.token")

echo "== 1. The ticket service (it only answers with its own key, which Warden holds) and Warden"
"$PY" examples/demo/tickets.py "$TICKETS_PORT" & PIDS+=($!)
cat > "$WORK/warden.yaml" <<EOF
listen: 127.0.0.1:$WARDEN_PORT
data: $WORK/data
routes:
  tickets: {upstream: "http://127.0.0.1:$TICKETS_PORT", segment: support, credential: tickets-api-key}
  billing: {upstream: "http://127.0.0.1:$TICKETS_PORT", segment: finance}
mcp_servers:
  kb: {command: ["$PY", "$ROOT/examples/demo/kb_mcp.py"]}
EOF
"$W" serve --config "$WORK/warden.yaml" > "$WORK/warden.log" 2>&1 & PIDS+=($!)
wait_for "$S/readyz"
printf %s 'tk-demo-upstream-key' | "$W" secret set tickets-api-key "${ADMIN[@]}" > /dev/null
echo "   Warden on $S (demo policies), tickets-api-key stored sealed"

echo "== 2. The node agent and the support bot it attests"
BIN_SHA=$(sha256sum "$W" | cut -c1-64)
# The node's manifest pins its binary: the node presents its own hash when it enrolls.
printf 'name: demo-node\nowner: platform@example.com\nbinary_sha256: %s\n' "$BIN_SHA" > "$WORK/node.yaml"
NODE_JOIN=$("$W" agent register --manifest "$WORK/node.yaml" "${ADMIN[@]}" \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["join_token"])')
# The bot's manifest, plus the node that attests it and what its process must be: this user, running this warden
# binary (the sidecar is the bot's process here). All selectors must match what the kernel reports.
{ cat examples/demo/support-bot.yaml
  echo "node: demo-node"
  echo "selectors: [\"unix:uid:$(id -u)\", \"unix:sha256:$BIN_SHA\"]"; } > "$WORK/support-bot.yaml"
BOT_ID=$("$W" agent register --manifest "$WORK/support-bot.yaml" "${ADMIN[@]}" \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["spiffe_id"])')
SOCK=$WORK/agent.sock
"$W" node --server "$S" --join-token "$NODE_JOIN" --manifest "$WORK/node.yaml" --key "$WORK/node.key" \
  --socket "$SOCK" > "$WORK/node.log" 2>&1 & PIDS+=($!)
for _ in $(seq 300); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$WORK/node.log"; echo "demo: warden node did not start" >&2; exit 1; }
echo "   warden node enrolled (key $WORK/node.key, 0600) and serves the SPIFFE Workload API on $SOCK"
echo "   $BOT_ID: uid $(id -u) running warden (sha256 ${BIN_SHA:0:16}...), attested by the kernel, no key on disk"

echo "== 3. The sidecar takes the bot's identity from the node; the bot talks plain HTTP to $P"
"$W" agent proxy --server "$S" --socket "$SOCK" --listen "127.0.0.1:$PROXY_PORT" > "$WORK/proxy.log" 2>&1 & PIDS+=($!)
wait_for "$P/r/"
TICKET=$(curl -s "$P/r/tickets/v1/tickets/42")
echo "   GET /r/tickets/v1/tickets/42 -> $TICKET"
"$PY" -c 'import json,sys; t=json.loads(sys.argv[1]); assert t["ticket"]["id"] == 42, t' "$TICKET"

echo "== 4. MCP through the same sidecar, with the SDK's stock client"
"$PY" examples/demo/mcp_call.py "$P/mcp/kb"

echo "== 5. A call the bot may not make: billing is not in its manifest (and outside its segment)"
BILLING=$(curl -s -w ' HTTP %{http_code}' "$P/r/billing/v1/invoices" | tr -d '\n')
echo "   GET /r/billing/v1/invoices -> $BILLING"
case "$BILLING" in *"HTTP 403"*) ;; *) echo "demo: billing was not refused" >&2; exit 1 ;; esac

echo "== 6. Where to see it: the signed audit log"
DENIALS=$("$W" audit export --format jsonl --decision deny "${ADMIN[@]}")
echo "$DENIALS" | tail -2 | cut -c1-240 | sed 's/^/   /'
ALLOWED=$("$W" audit export --format jsonl --decision allow "${ADMIN[@]}" | wc -l)
REFUSED=$(echo "$DENIALS" | grep -c '"decision":"deny"' || true)
"$W" audit verify --data "$WORK/data" > "$WORK/verify.txt" 2>&1 || { cat "$WORK/verify.txt"; exit 1; }

echo "== 7. The posture of the deployment's identities (warden posture; --html for a page with charts)"
"$W" posture --markdown "${ADMIN[@]}" > "$WORK/posture.md"
"$W" posture --html "$WORK/posture.html" "${ADMIN[@]}" > /dev/null
LEVEL=$(grep -m1 '^Maturity level' "$WORK/posture.md")
echo "   $LEVEL; first suggestions:"
sed -n '/^## Suggestions/,$p' "$WORK/posture.md" | sed -n '2,4p' | cut -c1-150 | sed 's/^/   /'
if [ -n "${WARDEN_DEMO_OUT:-}" ]; then mkdir -p "$WARDEN_DEMO_OUT" && cp "$WORK/posture.md" "$WORK/posture.html" "$WARDEN_DEMO_OUT/"; fi

echo "== 8. What a policy change would do, replayed on the recorded calls before it is made (warden policy diff)"
mkdir -p "$WORK/proposed" && cp "$WORK"/data/policies/*.cedar "$WORK/proposed/"
cat > "$WORK/proposed/freeze.cedar" <<'EOF'
// A proposed change: freeze reads of ticket details.
@id("freeze-ticket-reads")
forbid (principal, action == Action::"call", resource == Service::"tickets")
when { context.method == "GET" && context.path like "/v1/tickets/*" };
EOF
"$W" policy diff "$WORK/data/policies" "$WORK/proposed" --replay --since 1d "${ADMIN[@]}" > "$WORK/diff.txt"
sed 's/^/   /' "$WORK/diff.txt" | cut -c1-200
grep -q '^newly denied: 1$' "$WORK/diff.txt" || { echo "demo: the replay did not find the ticket read" >&2; exit 1; }

echo
echo "demo summary: ticket 42 read and kb/search called through the sidecar with no credentials in the bot,"
echo "  its identity attested by the node agent (SPIFFE Workload API, JWT-SVID -> DPoP-bound token);"
echo "  $ALLOWED decisions allowed (tokens, the ticket, the MCP session and search), $REFUSED refused (billing, kb/purge),"
echo "  every one in the signed audit log, which verifies ($W audit verify); posture: $LEVEL;"
echo "  the proposed freeze-ticket-reads policy would newly deny the one ticket read recorded."
