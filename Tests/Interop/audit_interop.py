"""An independent auditor of Warden's tamper-evident audit log (format: docs/audit.md).

    python audit_interop.py WARDEN_BIN WORKDIR
    python audit_interop.py --selftest

Live mode starts `WARDEN_BIN serve --data WORKDIR/data --listen 127.0.0.1:PORT`, makes audited activity through the
admin API (registrations, join tokens, an enrollment, an attestation failure, state changes, a key rotation, a token
revocation), takes two signed checkpoints A and B, and then checks everything an outside auditor can check with
nothing but Warden's published keys and its exports:

- checkpoint JWS (ES256, typ audit-checkpoint+jwt) with joserfc and with PyJWT, key chosen by kid from
  GET /v1/admin/audit/keys; claims equal to the JSON fields; the `prev` chain over every checkpoint;
- the JSON-lines export recomputed here: leaf hashes, RFC 9162 tree heads, the hash chain, seq 1..n, times;
- inclusion (RFC 9162 §2.1.3.2) and consistency (§2.1.4.2) proofs from the server, verified here, and shown to
  fail when a proof hash, the leaf or an exported line is changed;
- the OCSF export and the filtered events API;
- `warden audit verify --json` on the stopped server's data, then on copies of the data directory tampered with
  plain SQL (python's sqlite3, triggers dropped first, as an attacker with file access would): a modified field, a
  deleted, an inserted and a reordered entry, a truncation, a "smart attacker" who recomputes the hash chain, and a
  forged checkpoint signature. Each must be detected and located.

--selftest needs no server and no third-party package: it checks the hashing and proof code against the RFC 6962
test vectors of google/trillian (merkle/testonly/constants.go, merkle/logverifier/log_verifier_test.go), proofs made
by a reference generator for every size 1..20 and every index, corrupted proofs, and the tamper procedures on a
synthetic database against a reference verifier.

Prints one line per check ("ok NAME" or "FAIL NAME: detail") and at the end "N passed, M failed"; exits 1 when any
check failed. The live mode needs: joserfc, pyjwt[crypto], cryptography, requests.
"""
import calendar
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from interop_common import (Agent, CheckFailed, Run, Server, State, Warden, b64url, b64url_decode, b64url_json,
                            enroll_request, expect, free_port, keep_loopback_off_proxy, new_key, register,
                            token_request)
from interop_common import describe as describe_response

keep_loopback_off_proxy()

CLI_TIMEOUT = 60  # seconds, every `warden audit verify`
CHECKPOINT_TYP = "audit-checkpoint+jwt"

# The documented entry keys, in their documented order (docs/audit.md, "Entries").
ENTRY_KEYS = ["seq", "time", "kind", "action", "actor", "agent", "agent_id", "resource", "decision", "reason",
              "policies", "trust", "delegation", "request_digest", "latency_us", "source", "message", "details"]
ENTRY_KINDS = {"decision", "admin", "lifecycle", "system"}
TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z$")
HEX32_RE = re.compile(r"^[0-9a-f]{64}$")
ADMIN_ACTOR = b'"actor":"admin"'


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------------------------
# RFC 6962 / RFC 9162 hashing, written from the RFCs (pure functions, checked by --selftest)

def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


EMPTY_ROOT = sha256(b"")
ZERO_CHAIN = bytes(32)


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 §2.1: SHA-256(0x00 || entry)."""
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: SHA-256(0x01 || left || right)."""
    return sha256(b"\x01" + left + right)


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def mth(leaves, lo=0, hi=None) -> bytes:
    """RFC 9162 §2.1.1 MTH over the leaf hashes leaves[lo:hi]."""
    if hi is None:
        hi = len(leaves)
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[lo]
    k = split_point(n)
    return node_hash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi))


def inclusion_path(m: int, leaves, lo=0, hi=None) -> list:
    """Reference generator, RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]) (m relative to lo)."""
    if hi is None:
        hi = len(leaves)
    n = hi - lo
    if n <= 1:
        return []
    k = split_point(n)
    if m < k:
        return inclusion_path(m, leaves, lo, lo + k) + [mth(leaves, lo + k, hi)]
    return inclusion_path(m - k, leaves, lo + k, hi) + [mth(leaves, lo, lo + k)]


def consistency_path(m: int, leaves, lo=0, hi=None, complete=True) -> list:
    """Reference generator, RFC 9162 §2.1.4.1 SUBPROOF(m, D[lo:hi], complete) for 0 < m <= hi-lo."""
    if hi is None:
        hi = len(leaves)
    n = hi - lo
    if m == n:
        return [] if complete else [mth(leaves, lo, hi)]
    k = split_point(n)
    if m <= k:
        return consistency_path(m, leaves, lo, lo + k, complete) + [mth(leaves, lo + k, hi)]
    return consistency_path(m - k, leaves, lo + k, hi, False) + [mth(leaves, lo, lo + k)]


def _hashes_ok(*values) -> bool:
    return all(isinstance(v, bytes) and len(v) == 32 for v in values)


def verify_inclusion(leaf_index: int, tree_size: int, leaf: bytes, proof: list, root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not (0 <= leaf_index < tree_size) or not _hashes_ok(leaf, root, *proof):
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: list) -> bool:
    """RFC 9162 §2.1.4.2, plus the trivial cases it leaves out (first == second, first == 0)."""
    if not _hashes_ok(first_root, second_root, *proof) or first < 0 or second < first:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


def chain_values(entries, start=ZERO_CHAIN) -> list:
    """docs/audit.md: chain_0 = 32 zero bytes, chain_n = SHA-256(chain_(n-1) || leaf_hash(entry n))."""
    out, c = [], start
    for e in entries:
        c = sha256(c + leaf_hash(e))
        out.append(c)
    return out


def parse_ndjson(body: bytes) -> list:
    """The lines of a JSON-lines body (one optional final newline), as bytes, exactly as sent."""
    if not body:
        return []
    if body.endswith(b"\n"):
        body = body[:-1]
    return body.split(b"\n")


def time_micros(text: str) -> int:
    m = TIME_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise CheckFailed(f"time {text!r} is not RFC 3339 UTC with microseconds (2026-11-24T10:00:00.123456Z)")
    y, mo, d, h, mi, s, us = (int(g) for g in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + us


def unhex(value, what: str) -> bytes:
    expect(isinstance(value, str) and HEX32_RE.match(value) is not None, f"{what} is not 64 lowercase hex: {value!r}")
    return bytes.fromhex(value)


def jws_parts(jws: str):
    """(header, claims) of a compact JWS, unverified."""
    parts = jws.split(".") if isinstance(jws, str) else []
    expect(len(parts) == 3, f"not a compact JWS: {str(jws)[:80]!r}")
    return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))


# ---------------------------------------------------------------------------------------------------------------
# The database, as an attacker with file access sees it (and a reference verifier, to check the tampering itself)

def chain_style(value):
    """How the store encodes a 32-byte hash: raw BLOB, hex in a BLOB, or hex TEXT."""
    if isinstance(value, (bytes, memoryview)):
        b = bytes(value)
        if len(b) == 32:
            return "raw"
        if len(b) == 64:
            return "hexblob"
    if isinstance(value, str) and len(value) == 64:
        return "hextext"
    raise CheckFailed(f"unexpected hash encoding in the database: {value!r}")


def decode_hash(value) -> bytes:
    style = chain_style(value)
    if style == "raw":
        return bytes(value)
    return bytes.fromhex(bytes(value).decode() if style == "hexblob" else value)


def encode_hash(raw: bytes, style: str):
    if style == "raw":
        return raw
    return raw.hex().encode() if style == "hexblob" else raw.hex()


def as_bytes(entry) -> bytes:
    return entry.encode("utf-8") if isinstance(entry, str) else bytes(entry)


def connect(path: str):
    con = sqlite3.connect(path, isolation_level=None, timeout=10)
    con.execute("PRAGMA foreign_keys = OFF")
    return con


def audit_rows(con) -> list:
    return [(seq, as_bytes(entry), chain) for seq, entry, chain in
            con.execute("SELECT seq, entry, chain FROM audit_log ORDER BY seq")]


def drop_audit_triggers(con) -> list:
    """What an attacker does first: drop the append-only triggers."""
    names = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
        "('audit_log', 'audit_checkpoints', 'audit_nodes')")]
    for name in names:
        con.execute('DROP TRIGGER "%s"' % name.replace('"', '""'))
    return names


def nodes_layout(con, leaves):
    """Whether audit_nodes holds complete subtrees as (level, idx) -> MTH(leaves[idx*2^level : (idx+1)*2^level]):
    True, False (another layout), or None (no such table or no rows)."""
    try:
        rows = con.execute("SELECT level, idx, hash FROM audit_nodes").fetchall()
    except sqlite3.OperationalError:
        return None
    if not rows:
        return None
    for level, idx, h in rows:
        lo = idx << level
        hi = lo + (1 << level)
        try:
            if hi > len(leaves) or decode_hash(h) != mth(leaves, lo, hi):
                return False
        except CheckFailed:
            return False
    return True


def rewrite_nodes(con, leaves):
    """A smart attacker keeps the cached tree consistent with the rewritten entries (layout as in nodes_layout)."""
    for level, idx, h in con.execute("SELECT level, idx, hash FROM audit_nodes").fetchall():
        lo = idx << level
        hi = lo + (1 << level)
        if hi > len(leaves):
            con.execute("DELETE FROM audit_nodes WHERE level = ? AND idx = ?", (level, idx))
        else:
            con.execute("UPDATE audit_nodes SET hash = ? WHERE level = ? AND idx = ?",
                        (encode_hash(mth(leaves, lo, hi), chain_style(h)), level, idx))


def forged_entry(original: bytes, seq: int) -> bytes:
    """A plausible entry: the original's fields in the documented order, another seq and message."""
    obj = json.loads(original)
    obj["seq"] = seq
    obj["message"] = "forged by the audit interop test"
    ordered = {k: obj[k] for k in ENTRY_KEYS if k in obj}
    ordered.update({k: v for k, v in obj.items() if k not in ordered})
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def flip_signature(jws: str) -> str:
    h, p, s = jws.split(".")
    sig = bytearray(b64url_decode(s))
    sig[len(sig) // 2] ^= 0x01
    return f"{h}.{p}.{b64url(bytes(sig))}"


def tamper(db_path: str, case: str, k: int) -> str:
    """Applies one tampering to the database at db_path; returns what was done (for messages)."""
    con = connect(db_path)
    try:
        dropped = drop_audit_triggers(con)
        con.execute("BEGIN IMMEDIATE")
        rows = {seq: (entry, chain) for seq, entry, chain in audit_rows(con)}
        expect(k in rows and k + 1 in rows and k - 1 in rows, f"harness: rows {k - 1}..{k + 1} are not all there")
        if case in ("modified-field", "smart-attacker", "smart-attacker-no-internal-checkpoints"):
            con.execute("""UPDATE audit_log SET entry = replace(entry, '"actor":"admin"', '"actor":"system"') """
                        "WHERE seq = ?", (k,))
            after = as_bytes(con.execute("SELECT entry FROM audit_log WHERE seq = ?", (k,)).fetchone()[0])
            expect(after != rows[k][0], f"harness: entry {k} does not contain {ADMIN_ACTOR.decode()}")
            done = f"entry {k}: actor admin -> system"
            if case != "modified-field":
                # Recompute every chain value from K on, and the cached tree, so that the chain is consistent.
                all_rows = audit_rows(con)
                style = chain_style(all_rows[0][2])
                prev = decode_hash(rows[k - 1][1])
                for seq, entry, _ in all_rows:
                    if seq < k:
                        continue
                    prev = sha256(prev + leaf_hash(entry))
                    con.execute("UPDATE audit_log SET chain = ? WHERE seq = ?", (encode_hash(prev, style), seq))
                done += ", every later chain value recomputed"
                if nodes_layout_before.get(db_path):
                    rewrite_nodes(con, [leaf_hash(e) for _, e, _ in all_rows])
                    done += ", audit_nodes recomputed"
                if case == "smart-attacker-no-internal-checkpoints":
                    con.execute("DELETE FROM audit_checkpoints")
                    done += ", every stored checkpoint deleted"
        elif case == "deleted-entry":
            con.execute("DELETE FROM audit_log WHERE seq = ?", (k,))
            done = f"entry {k} deleted"
        elif case == "inserted-entry":
            style = chain_style(rows[k][1])
            forged = forged_entry(rows[k][0], k + 1)
            chain = sha256(decode_hash(rows[k][1]) + leaf_hash(forged))
            con.execute("UPDATE audit_log SET seq = -seq WHERE seq > ?", (k,))
            con.execute("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0")
            con.execute("INSERT INTO audit_log (seq, entry, chain) VALUES (?, ?, ?)",
                        (k + 1, forged.decode("utf-8"), encode_hash(chain, style)))
            done = f"forged entry inserted at {k + 1} (chain computed from {k}), later rows renumbered"
        elif case == "reordered":
            (ek, ck), (en, cn) = rows[k], rows[k + 1]
            con.execute("UPDATE audit_log SET entry = ?, chain = ? WHERE seq = ?", (en.decode("utf-8"), cn, k))
            con.execute("UPDATE audit_log SET entry = ?, chain = ? WHERE seq = ?", (ek.decode("utf-8"), ck, k + 1))
            done = f"entries {k} and {k + 1} swapped (with their chain values)"
        elif case == "truncated":
            con.execute("DELETE FROM audit_log WHERE seq > ?", (k,))
            con.execute("DELETE FROM audit_checkpoints WHERE tree_size > ?", (k,))
            done = f"entries after {k} and checkpoints beyond {k} deleted"
            if nodes_layout_before.get(db_path):
                rewrite_nodes(con, [leaf_hash(e) for _, e, _ in audit_rows(con)])
                done += ", audit_nodes trimmed"
        elif case == "checkpoint-signature":
            row = con.execute("SELECT tree_size, jws FROM audit_checkpoints ORDER BY tree_size LIMIT 1").fetchone()
            expect(row is not None, "harness: no stored checkpoint to tamper with")
            con.execute("UPDATE audit_checkpoints SET jws = ? WHERE tree_size = ?", (flip_signature(row[1]), row[0]))
            done = f"signature of the stored checkpoint at tree size {row[0]} changed"
        else:
            raise CheckFailed(f"harness: unknown case {case}")
        con.execute("COMMIT")
        return done + f" ({len(dropped)} triggers dropped)"
    finally:
        con.close()


# Per database path: whether audit_nodes used the complete-subtree layout before tampering (set by the caller).
nodes_layout_before = {}


def reference_verify(db_path: str, checkpoint=None) -> dict:
    """What `warden audit verify --json` is expected to report, computed independently (signatures excepted: the
    stored checkpoints' payloads are checked against the entries, their signatures are not)."""
    con = connect(db_path)
    try:
        rows = audit_rows(con)
        stored = con.execute("SELECT tree_size, jws FROM audit_checkpoints ORDER BY tree_size").fetchall()
        try:
            anchor = con.execute("SELECT tree_size, chain FROM audit_anchor WHERE id = 1").fetchone()
        except sqlite3.OperationalError:
            anchor = None
    finally:
        con.close()

    def fail(seq, reason):
        return {"ok": False, "failure": {"seq": seq, "reason": reason}}

    base = anchor[0] if anchor else 0
    prev = decode_hash(anchor[1]) if anchor and anchor[0] > 0 else ZERO_CHAIN
    expected, last_time, chains = base + 1, None, []
    for seq, entry, chain in rows:
        if seq != expected:
            return fail(expected, f"entry {expected} is missing (the next stored entry is {seq})")
        try:
            obj = json.loads(entry)
        except ValueError:
            return fail(seq, "the entry is not JSON")
        if not isinstance(obj, dict) or obj.get("seq") != seq:
            return fail(seq, f"the entry's seq field is {obj.get('seq') if isinstance(obj, dict) else None}")
        t = time_micros(obj.get("time"))
        if last_time is not None and t < last_time:
            return fail(seq, "time goes backwards")
        last_time = t
        prev = sha256(prev + leaf_hash(entry))
        if prev != decode_hash(chain):
            return fail(seq, "the stored chain value does not follow from the previous entry")
        chains.append(prev)
        expected += 1
    n = expected - 1
    leaves = [leaf_hash(e) for _, e, _ in rows]
    heads = [("stored checkpoint", jws_parts(jws)[1]) for _, jws in stored]
    if checkpoint is not None:
        heads.append(("the given checkpoint", jws_parts(checkpoint["jws"])[1]))
    for what, claims in heads:
        size = claims["tree_size"]
        if size > n:
            return fail(None, f"the log is truncated: {what} has tree size {size}, the log {n} entries")
        if base == 0 and mth(leaves, 0, size).hex() != claims["root_hash"]:
            return fail(None, f"{what} at tree size {size}: root_hash does not match the entries")
        if size > base and chains[size - base - 1].hex() != claims["chain_head"]:
            return fail(None, f"{what} at tree size {size}: chain_head does not match the entries")
    return {"ok": True, "entries": len(rows), "checkpoints": len(heads), "tree_size": n,
            "root_hash": mth(leaves).hex() if base == 0 else None}


# The tamper cases and what a verifier must report for each (shared by the live run and the self-test).
# (case, pass the external checkpoint, checked by the reference verifier)
TAMPER_CASES = [
    ("modified-field", True, True),
    ("deleted-entry", True, True),
    ("inserted-entry", True, True),
    ("reordered", True, True),
    ("truncated", True, True),
    ("smart-attacker", True, True),
    ("smart-attacker-no-internal-checkpoints", True, True),
    ("checkpoint-signature", False, False),
]


def judge(case: str, result, k: int, checkpoint_size: int, nodes_rewritten=True):
    """None when `result` (verify's JSON) is an acceptable report of the tampering `case`, else why not.
    nodes_rewritten: whether the smart attacker could also rewrite audit_nodes (a layout this script knows); when
    not, a reason naming the tree or the root is accepted too."""
    if not isinstance(result, dict) or result.get("ok") is not False:
        return f"expected {{\"ok\": false, ...}}, got {json.dumps(result)[:300]}"
    f = result.get("failure")
    if not isinstance(f, dict) or "seq" not in f or not isinstance(f.get("reason"), str) or not f["reason"]:
        return f"failure must be {{\"seq\": int|null, \"reason\": str}}, got {json.dumps(f)[:300]}"
    seq, reason = f["seq"], f["reason"]
    if seq is not None and not is_int(seq):
        return f"failure.seq is {seq!r}, not an integer or null"
    if case in ("modified-field", "deleted-entry", "reordered"):
        ok = seq == k
        want = f"seq {k}"
    elif case == "inserted-entry":
        ok = seq in (k + 1, k + 2)
        want = f"seq {k + 1} or {k + 2}"
    elif case == "truncated":
        ok = (seq is None or seq == k + 1) and re.search(r"truncat|tree[ _-]?size", reason, re.I) is not None
        want = f"seq null or {k + 1} and a reason mentioning truncation or the tree size"
    elif case.startswith("smart-attacker"):
        words = r"checkpoint" if nodes_rewritten else r"checkpoint|tree|node|root"
        ok = (seq is None or 1 <= seq <= checkpoint_size) and re.search(words, reason, re.I) is not None
        want = f"seq null or <= {checkpoint_size} and a reason mentioning the checkpoint"
        if not nodes_rewritten:
            want += " (or the tree, its nodes or root: audit_nodes could not be rewritten)"
    elif case == "checkpoint-signature":
        ok = re.search(r"checkpoint|signature", reason, re.I) is not None
        want = "a reason mentioning the checkpoint or its signature"
    else:
        return f"unknown case {case}"
    return None if ok else f"expected {want}, got failure {json.dumps(f)}"


def choose_k(lines: list, a_size: int):
    """A seq well inside checkpoint A whose entry has "actor":"admin" (so that case a can change it), with K-1, K+1
    and K+2 also inside A; the one nearest the middle of A."""
    candidates = [s for s in range(2, a_size - 1) if ADMIN_ACTOR in lines[s - 1]]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (abs(s - a_size // 2), s))


# ---------------------------------------------------------------------------------------------------------------
# --selftest

# google/trillian merkle/testonly/constants.go (LeafInputs, NodeHashes level 0, RootHashes) and
# merkle/logverifier/log_verifier_test.go (inclusionProofs, consistencyProofs): RFC 6962 test vectors.
RFC6962_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
RFC6962_LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
RFC6962_ROOTS = [  # by tree size 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
RFC6962_INCLUSION = [  # (leaf index from 1, tree size, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
RFC6962_CONSISTENCY = [  # (first, second, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def flipped(proof: list, i: int, bit: int = 8) -> list:
    out = list(proof)
    b = bytearray(out[i])
    b[0] ^= bit
    out[i] = bytes(b)
    return out


def corrupt_inclusion(index, size, leaf, proof, root):
    """Variations that must all be rejected (after trillian's corruptInclusionProof)."""
    probes = [
        ("index - 1", index - 1, size, leaf, proof, root), ("index + 1", index + 1, size, leaf, proof, root),
        ("index ^ 2", index ^ 2, size, leaf, proof, root), ("size * 2", index, size * 2, leaf, proof, root),
        ("size / 2", index, size // 2, leaf, proof, root), ("wrong leaf", index, size, b"WrongLeaf", proof, root),
        ("wrong leaf hash", index, size, sha256(b"x"), proof, root),
        ("empty root", index, size, leaf, proof, EMPTY_ROOT), ("random root", index, size, leaf, proof, SOME_HASH),
        ("trailing garbage", index, size, leaf, proof + [b""], root),
        ("trailing root", index, size, leaf, proof + [root], root),
        ("preceding garbage", index, size, leaf, [b""] + proof, root),
        ("preceding root", index, size, leaf, [root] + proof, root),
    ]
    for i in range(len(proof)):
        probes.append((f"flipped proof[{i}]", index, size, leaf, flipped(proof, i), root))
    if proof:
        probes.append(("removed component", index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        probes.append(("inserted component", index, size, leaf, [proof[0], SOME_HASH] + proof[1:], root))
    return probes


def corrupt_consistency(first, second, root1, root2, proof):
    """Variations that must all be rejected (after trillian's corruptConsistencyProof); proof is not empty."""
    probes = [
        ("first - 1", first - 1, second, root1, root2, proof), ("first + 1", first + 1, second, root1, root2, proof),
        ("first ^ 2", first ^ 2, second, root1, root2, proof), ("second * 2", first, second * 2, root1, root2, proof),
        ("second / 2", first, second // 2, root1, root2, proof),
        ("wrong root1", first, second, sha256(b"WrongRoot"), root2, proof),
        ("wrong root2", first, second, root1, sha256(b"WrongRoot"), proof),
        ("swapped roots", first, second, root2, root1, proof), ("empty proof", first, second, root1, root2, []),
        ("trailing garbage", first, second, root1, root2, proof + [b""]),
        ("trailing root1", first, second, root1, root2, proof + [root1]),
        ("trailing root2", first, second, root1, root2, proof + [root2]),
        ("preceding garbage", first, second, root1, root2, [b""] + proof),
        ("preceding root1", first, second, root1, root2, [root1] + proof),
        ("preceding root2", first, second, root1, root2, [root2] + proof),
        ("preceding proof[0]", first, second, root1, root2, [proof[0]] + proof),
        ("truncated proof", first, second, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        probes.append((f"flipped proof[{i}]", first, second, root1, root2, flipped(proof, i, 16)))
    return probes


SELFTEST_SCHEMA = """
CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL, chain BLOB NOT NULL);
CREATE INDEX audit_log_agent ON audit_log(json_extract(entry, '$.agent'), seq);
CREATE TABLE audit_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE audit_checkpoints (tree_size INTEGER PRIMARY KEY, jws TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1), tree_size INTEGER NOT NULL, chain BLOB NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN old.seq > coalesce((SELECT tree_size FROM audit_anchor WHERE id = 1), 0)
BEGIN SELECT RAISE(ABORT, 'audit entries can only be pruned behind a signed checkpoint'); END;
CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END;
CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
"""


def synthetic_log(path: str, n: int, checkpoint_sizes, style: str):
    """A database shaped like Warden's, with n entries and unsigned checkpoints; returns (lines, {size: cp})."""
    lines = []
    for seq in range(1, n + 1):
        t = f"2026-11-24T10:00:{seq // 10:02d}.{seq * 1000:06d}Z"
        if seq % 3 == 0:
            e = {"seq": seq, "time": t, "kind": "lifecycle", "action": "agent.enroll",
                 "actor": f"spiffe://warden.local/agent/bot-{seq}", "agent": f"spiffe://warden.local/agent/bot-{seq}"}
        else:
            e = {"seq": seq, "time": t, "kind": "admin", "action": "agent.register", "actor": "admin",
                 "agent": f"spiffe://warden.local/agent/bot-{seq}", "message": "caf\u00e9 \u2713"}
        lines.append(json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    leaves = [leaf_hash(e) for e in lines]
    chains = chain_values(lines)
    con = connect(path)
    con.executescript(SELFTEST_SCHEMA)
    con.execute("BEGIN")
    for seq, (e, c) in enumerate(zip(lines, chains), start=1):
        con.execute("INSERT INTO audit_log VALUES (?, ?, ?)", (seq, e.decode("utf-8"), encode_hash(c, style)))
    level = 0
    while (1 << level) <= n:
        for idx in range(n >> level):
            lo = idx << level
            con.execute("INSERT INTO audit_nodes VALUES (?, ?, ?)",
                        (level, idx, encode_hash(mth(leaves, lo, lo + (1 << level)), style)))
        level += 1
    cps, prev = {}, None
    for size in checkpoint_sizes:
        claims = {"iss": "http://127.0.0.1", "origin": "warden.local/audit", "tree_size": size,
                  "root_hash": mth(leaves, 0, size).hex(), "chain_head": chains[size - 1].hex(), "iat": 1}
        if prev is not None:
            claims["prev"] = hashlib.sha256(prev.encode()).hexdigest()
        jws = (b64url_json({"alg": "ES256", "kid": "selftest", "typ": CHECKPOINT_TYP}) + "." + b64url_json(claims)
               + "." + b64url(bytes(64)))
        con.execute("INSERT INTO audit_checkpoints VALUES (?, ?, 0)", (size, jws))
        cps[size] = {"tree_size": size, "root_hash": claims["root_hash"], "chain_head": claims["chain_head"],
                     "jws": jws}
        prev = jws
    con.execute("COMMIT")
    con.close()
    return lines, cps


def selftest() -> int:
    run = Run()
    rfc_leaves = [bytes.fromhex(h) for h in RFC6962_LEAVES]
    rfc_hashes = [leaf_hash(x) for x in rfc_leaves]

    def vectors_leaves():
        for i, (got, want) in enumerate(zip(rfc_hashes, RFC6962_LEAF_HASHES)):
            expect(got.hex() == want, f"leaf {i}: {got.hex()} != {want}")
    run.check("rfc6962-leaf-hashes", vectors_leaves)

    def vectors_roots():
        for size, want in enumerate(RFC6962_ROOTS):
            got = mth(rfc_hashes[:size]).hex()
            expect(got == want, f"MTH of {size} leaves: {got} != {want}")
    run.check("rfc6962-tree-heads", vectors_roots)

    def vectors_inclusion():
        for leaf, size, proof_hex in RFC6962_INCLUSION:
            proof = [bytes.fromhex(h) for h in proof_hex]
            root = bytes.fromhex(RFC6962_ROOTS[size])
            expect(inclusion_path(leaf - 1, rfc_hashes[:size]) == proof, f"generated PATH({leaf - 1}, {size}) differs")
            expect(verify_inclusion(leaf - 1, size, rfc_hashes[leaf - 1], proof, root),
                   f"known proof ({leaf - 1}, {size}) rejected")
            for desc, *probe in corrupt_inclusion(leaf - 1, size, rfc_hashes[leaf - 1], proof, root):
                expect(not verify_inclusion(*probe), f"({leaf - 1}, {size}) {desc}: accepted")
    run.check("rfc6962-known-inclusion-proofs", vectors_inclusion)

    def vectors_consistency():
        for first, second, proof_hex in RFC6962_CONSISTENCY:
            proof = [bytes.fromhex(h) for h in proof_hex]
            r1, r2 = bytes.fromhex(RFC6962_ROOTS[first]), bytes.fromhex(RFC6962_ROOTS[second])
            expect(consistency_path(first, rfc_hashes[:second]) == proof, f"generated PROOF({first}, {second}) differs")
            expect(verify_consistency(first, second, r1, r2, proof), f"known proof ({first}, {second}) rejected")
            if proof:
                for desc, *probe in corrupt_consistency(first, second, r1, r2, proof):
                    expect(not verify_consistency(*probe), f"({first}, {second}) {desc}: accepted")
    run.check("rfc6962-known-consistency-proofs", vectors_consistency)

    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(20)]
    roots = []

    def generated_inclusion():
        roots[:] = [mth(leaves[:n]) for n in range(21)]
        count = 0
        for n in range(1, 21):
            for i in range(n):
                proof = inclusion_path(i, leaves[:n])
                expect(verify_inclusion(i, n, leaves[i], proof, roots[n]), f"PATH({i}, {n}) rejected")
                for desc, *probe in corrupt_inclusion(i, n, leaves[i], proof, roots[n]):
                    expect(not verify_inclusion(*probe), f"PATH({i}, {n}) {desc}: accepted")
                    count += 1
        expect(count > 1000, f"only {count} corrupted inclusion proofs tried")
    run.check("generated-inclusion-proofs-1..20", generated_inclusion)

    def generated_consistency():
        expect(len(roots) == 21, "skipped: the tree heads were not computed")
        for n in range(1, 21):
            for m in range(1, n + 1):
                proof = consistency_path(m, leaves[:n])
                expect(len(proof) == 0 if m == n else len(proof) > 0, f"PROOF({m}, {n}) has {len(proof)} hashes")
                expect(verify_consistency(m, n, roots[m], roots[n], proof), f"PROOF({m}, {n}) rejected")
                if proof:
                    for desc, *probe in corrupt_consistency(m, n, roots[m], roots[n], proof):
                        expect(not verify_consistency(*probe), f"PROOF({m}, {n}) {desc}: accepted")
                else:
                    expect(not verify_consistency(m, n, roots[m], SOME_HASH, proof), f"({m}, {n}) other root")
                    expect(not verify_consistency(m, n, roots[m], roots[n], [SOME_HASH]), f"({m}, {n}) extra hash")
        expect(verify_consistency(0, 5, EMPTY_ROOT, roots[5], []), "the empty tree is consistent with any tree")
    run.check("generated-consistency-proofs-1..20", generated_consistency)

    def chain():
        entries = [f'{{"seq":{i}}}'.encode() for i in range(1, 9)]
        c = chain_values(entries)
        first = hashlib.sha256(bytes(32) + hashlib.sha256(b"\x00" + entries[0]).digest()).digest()
        expect(c[0] == first, "chain_1 is not SHA-256(0^32 || SHA-256(0x00 || e1))")
        expect(c[1] == hashlib.sha256(c[0] + hashlib.sha256(b"\x00" + entries[1]).digest()).digest(), "chain_2")
        for i in range(len(entries)):
            changed = list(entries)
            changed[i] = changed[i] + b" "
            c2 = chain_values(changed)
            expect(c2[:i] == c[:i] and all(a != b for a, b in zip(c2[i:], c[i:])), f"change at {i}")
        expect(parse_ndjson(b"a\nb\n") == [b"a", b"b"] and parse_ndjson(b"a\nb") == [b"a", b"b"], "ndjson")
        expect(parse_ndjson(b"") == [], "empty ndjson")
        expect(time_micros("1970-01-01T00:00:01.000002Z") == 1_000_002, "time_micros")
    run.check("hash-chain", chain)

    tmp = tempfile.mkdtemp(prefix="audit-selftest-")
    try:
        for style in ("raw", "hextext"):
            n, a_size, b_size = 24, 16, 22

            def tampering(style=style, n=n, a_size=a_size, b_size=b_size):
                src = os.path.join(tmp, f"pristine-{style}.sqlite")
                lines, cps = synthetic_log(src, n, [8, a_size, b_size], style)
                k = choose_k(lines, a_size)
                expect(k is not None and 2 <= k <= a_size - 2, f"choose_k gave {k}")
                cp_b = cps[b_size]
                ref = reference_verify(src, cp_b)
                whole = mth([leaf_hash(x) for x in lines]).hex()
                expect(ref["ok"] and ref["entries"] == n and ref["root_hash"] == whole,
                       f"pristine: {ref}")
                con = connect(src)
                try:
                    con.execute("UPDATE audit_log SET entry = entry WHERE seq = 1")
                    raise CheckFailed("the append-only trigger did not stop an UPDATE")
                except sqlite3.DatabaseError as e:
                    expect("append-only" in str(e), f"unexpected error {e}")
                finally:
                    con.close()
                for case, with_cp, by_reference in TAMPER_CASES:
                    db = os.path.join(tmp, f"{case}-{style}.sqlite")
                    shutil.copyfile(src, db)
                    con = connect(db)
                    nodes_layout_before[db] = nodes_layout(con, [leaf_hash(x) for x in lines])
                    con.close()
                    expect(nodes_layout_before[db] is True, "the synthetic audit_nodes layout was not recognised")
                    tamper(db, case, k)
                    if not by_reference:
                        con = connect(db)
                        stored = con.execute("SELECT jws FROM audit_checkpoints WHERE tree_size = 8").fetchone()[0]
                        con.close()
                        expect(stored != cps[8]["jws"] and stored.rsplit(".", 1)[0] == cps[8]["jws"].rsplit(".", 1)[0],
                               f"{case}: the stored checkpoint was not changed as planned")
                        continue
                    res = reference_verify(db, cp_b if with_cp else None)
                    why = judge(case, res, k, b_size)
                    expect(why is None, f"{case}: the reference verifier's report is not accepted: {why}")
                    if case == "truncated":
                        res = reference_verify(db, None)
                        expect(res["ok"], f"truncated, without the checkpoint: the reference verifier says {res}")
                    if case.startswith("smart-attacker"):
                        con = connect(db)
                        rows = audit_rows(con)
                        layout = nodes_layout(con, [leaf_hash(e) for _, e, _ in rows])
                        con.close()
                        expect(layout is True, f"{case}: audit_nodes not rewritten consistently")
                        expect(reference_verify(db, None)["ok"] is (case.endswith("no-internal-checkpoints")),
                               f"{case}: without the external checkpoint: {reference_verify(db, None)}")
            run.check(f"tamper-procedures-{style}", tampering)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run.summary()


# ---------------------------------------------------------------------------------------------------------------
# The live run: clients (third-party packages imported only here and, when called, by interop_common's server and
# client helpers)

pyjwt = jo_jws = ECKey = None


def import_clients():
    global pyjwt, jo_jws, ECKey
    import jwt as _pyjwt  # PyJWT
    from joserfc import jws as _jo_jws
    from joserfc.jwk import ECKey as _ECKey
    pyjwt, jo_jws, ECKey = _pyjwt, _jo_jws, _ECKey


def describe(resp) -> str:
    return describe_response(resp, www_authenticate=False)


def body_json(resp, what: str):
    try:
        return resp.json()
    except ValueError:
        raise CheckFailed(f"{what}: the response is not JSON: {describe(resp)}") from None


def manifest(name: str, **extra) -> dict:
    m = {"name": name, "owner": "audit@example.com", "roles": ["audit-test"], "peers": [], "routes": [], "tools": []}
    m.update(extra)
    return m




def admin_action(w: Warden, agent: Agent, action: str, status=200):
    r = w.admin("POST", f"/v1/admin/agents/{agent.name}/{action}", {"reason": f"audit interop {action}"})
    expect(r.status_code == status, f"{action} {agent.name}: expected {status}, got {describe(r)}")
    return body_json(r, f"{action} {agent.name}")


def check_checkpoint(cp, issuer: str, origin: str):
    """The checkpoint JSON of docs/audit.md, consistent with its own JWS (unverified here). Returns the claims."""
    expect(isinstance(cp, dict), f"checkpoint is not a JSON object: {cp!r}")
    for field in ("origin", "tree_size", "root_hash", "chain_head", "timestamp", "kid", "signature", "jws"):
        expect(field in cp, f"checkpoint lacks {field}: {json.dumps(cp)[:300]}")
    expect(is_int(cp["tree_size"]) and cp["tree_size"] >= 1, f"tree_size is {cp['tree_size']!r}")
    unhex(cp["root_hash"], "root_hash")
    unhex(cp["chain_head"], "chain_head")
    header, claims = jws_parts(cp["jws"])
    expect(header.get("alg") == "ES256", f"JWS alg is {header.get('alg')!r}")
    expect(header.get("typ") == CHECKPOINT_TYP, f"JWS typ is {header.get('typ')!r}, not {CHECKPOINT_TYP}")
    expect(header.get("kid") == cp["kid"], f"JWS kid {header.get('kid')!r} != kid field {cp['kid']!r}")
    expect(cp["jws"].split(".")[2] == cp["signature"], "the signature field is not the JWS signature")
    for field in ("origin", "tree_size", "root_hash", "chain_head"):
        expect(claims.get(field) == cp[field], f"claim {field} {claims.get(field)!r} != JSON {cp[field]!r}")
    expect(claims.get("iss") == issuer, f"iss {claims.get('iss')!r} != issuer {issuer!r}")
    expect(cp["origin"] == origin, f"origin {cp['origin']!r} != {origin!r}")
    expect(is_int(claims.get("iat")) and abs(claims["iat"] - time.time()) < 3600, f"iat is {claims.get('iat')!r}")
    ts = cp["timestamp"]
    if is_int(ts):
        expect(ts == claims["iat"], f"timestamp {ts} != iat {claims['iat']}")
    else:
        m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", str(ts))
        expect(m is not None, f"timestamp {ts!r} is neither seconds nor RFC 3339 UTC")
        secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
        expect(abs(secs - claims["iat"]) <= 1, f"timestamp {ts} is not iat {claims['iat']}")
    if "prev" in claims:
        unhex(claims["prev"], "prev")
    return claims


def jwk_for(jwks: dict, kid: str) -> dict:
    matches = [k for k in jwks.get("keys", []) if k.get("kid") == kid]
    expect(len(matches) == 1, f"{len(matches)} keys with kid {kid!r} in GET /v1/admin/audit/keys")
    return matches[0]


def verify_joserfc(jws: str, jwk: dict) -> dict:
    key = ECKey.import_key(jwk)
    obj = jo_jws.deserialize_compact(jws, key, algorithms=["ES256"])
    expect(obj.headers().get("typ") == CHECKPOINT_TYP, f"typ {obj.headers().get('typ')!r}")
    return json.loads(obj.payload)


def verify_pyjwt(jws: str, jwk: dict) -> dict:
    header = pyjwt.get_unverified_header(jws)
    expect(header.get("typ") == CHECKPOINT_TYP, f"typ {header.get('typ')!r}")
    key = pyjwt.PyJWK(jwk, algorithm="ES256").key
    return pyjwt.decode(jws, key, algorithms=["ES256"], leeway=300,
                        options={"require": ["iss", "iat"], "verify_aud": False})


def rejects(fn) -> bool:
    try:
        fn()
    except Exception:  # noqa: BLE001 - any refusal counts
        return True
    return False


def run_verify(binary: str, data: str, checkpoint=None):
    """`warden audit verify --data DATA [--checkpoint FILE] --json`: (exit status, JSON, stderr)."""
    args = [binary, "audit", "verify", "--data", data]
    if checkpoint is not None:
        args += ["--checkpoint", checkpoint]
    args.append("--json")
    p = subprocess.run(args, capture_output=True, text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
    out = p.stdout.strip()
    try:
        body = json.loads(out)
    except ValueError:
        raise CheckFailed(f"`{' '.join(args[1:])}` printed no JSON on stdout (exit {p.returncode}); stdout: "
                          f"{out[:300]!r} stderr: {p.stderr.strip()[:300]!r}") from None
    return p.returncode, body, p.stderr.strip()


def copy_data(src: str, dst: str):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)  # the whole directory: warden.sqlite with its -wal and -shm files, keys, token


# ---------------------------------------------------------------------------------------------------------------
# The checks


def live(binary: str, workdir: str) -> int:
    import_clients()
    os.makedirs(workdir, exist_ok=True)
    run = Run()
    server = Server(binary, workdir, free_port())
    w = Warden(server)
    sfx = secrets.token_hex(3)  # unique agent names, so that a reused WORKDIR still works
    st = State()  # state shared between checks
    need = st.need

    revoked = Agent(f"audit-revoked-{sfx}", manifest(f"audit-revoked-{sfx}"))
    retired = Agent(f"audit-retired-{sfx}", manifest(f"audit-retired-{sfx}"))
    enrolled = Agent(f"audit-enrolled-{sfx}", manifest(f"audit-enrolled-{sfx}"))
    real_binary = hashlib.sha256(b"the real agent binary").hexdigest()
    attested = Agent(f"audit-attested-{sfx}", manifest(f"audit-attested-{sfx}", binary_sha256=real_binary))
    late = Agent(f"audit-late-{sfx}", manifest(f"audit-late-{sfx}"))
    late2 = Agent(f"audit-late2-{sfx}", manifest(f"audit-late2-{sfx}"))

    def take_checkpoint(name):
        r = w.admin("POST", "/v1/admin/audit/checkpoint")
        expect(r.status_code in (200, 201), f"POST /v1/admin/audit/checkpoint: expected 200/201, got {describe(r)}")
        cp = body_json(r, "checkpoint")
        check_checkpoint(cp, w.base, need("origin"))
        st[name] = cp

    try:
        if not run.check("server-start", server.start):
            return run.summary()

        def admin_auth():
            for path in ("/v1/admin/audit/export?format=jsonl&since=0", "/v1/admin/audit/keys",
                         "/v1/admin/audit/checkpoint", "/v1/admin/audit/events?limit=1"):
                r = w.admin("GET", path, token=False)
                expect(r.status_code in (401, 403), f"GET {path} without the admin token: {describe(r)}")
            r = w.admin("POST", "/v1/admin/audit/checkpoint", token=False)
            expect(r.status_code in (401, 403), f"POST checkpoint without the admin token: {describe(r)}")
        run.check("admin-token-required", admin_auth)

        # 2: activity before checkpoint A
        def activity_register():
            register(w, revoked)
            td = re.match(r"^spiffe://([^/]+)/", revoked.spiffe_id)
            expect(td is not None, f"spiffe_id {revoked.spiffe_id!r}")
            st["origin"] = td.group(1) + "/audit"
            r = w.admin("POST", f"/v1/admin/agents/{revoked.name}/join-token")
            expect(r.status_code == 201, f"join-token: expected 201, got {describe(r)}")
            admin_action(w, revoked, "revoke")
            register(w, retired)
            admin_action(w, retired, "decommission")
            st["revoked"] = revoked
        run.check("activity-register-join-token-revoke-decommission", activity_register)

        def activity_enroll():
            reg = register(w, enrolled)
            enrolled.key = new_key()
            r = enroll_request(w, enrolled.key, reg["join_token"], reg["manifest_digest"])
            expect(r.status_code == 200, f"enroll: expected 200, got {describe(r)}")
            r = token_request(w, enrolled)
            expect(r.status_code == 200, f"token: expected 200, got {describe(r)}")
            st["enrolled"] = enrolled
        run.check("activity-enroll-and-token", activity_enroll)

        def activity_attestation():
            reg = register(w, attested)
            wrong = hashlib.sha256(b"a tampered binary").hexdigest()
            r = enroll_request(w, new_key(), reg["join_token"], reg["manifest_digest"], binary_sha256=wrong)
            expect(r.status_code == 403, f"wrong binary hash: expected 403, got {describe(r)}")
            st["attested"] = attested
        run.check("activity-attestation-failure", activity_attestation)

        run.check("checkpoint-A", lambda: take_checkpoint("A"))

        def rotate():
            r = w.admin("POST", "/v1/admin/keys/rotate")
            expect(r.status_code == 200, f"key rotation: expected 200, got {describe(r)}")
            st["rotated_kid"] = body_json(r, "rotate").get("kid")
        run.check("key-rotate", rotate)

        def activity_after():
            register(w, late)
            r = w.admin("POST", f"/v1/admin/agents/{late.name}/join-token")
            expect(r.status_code == 201, f"join-token: expected 201, got {describe(r)}")
            register(w, late2)
            admin_action(w, late2, "revoke")
            agent = need("enrolled")
            admin_action(w, agent, "quarantine")
            r = token_request(w, agent)
            expect(r.status_code in (400, 401, 403), f"token for a quarantined agent: {describe(r)}")
            admin_action(w, agent, "activate")
            r = token_request(w, agent)
            expect(r.status_code == 200, f"token after activation: {describe(r)}")
            jti = pyjwt.decode(body_json(r, "token")["access_token"], options={"verify_signature": False})["jti"]
            r = w.admin("POST", "/v1/admin/revocations", {"jti": jti, "reason": "audit interop"})
            expect(r.status_code == 200, f"token revocation: expected 200, got {describe(r)}")
        run.check("activity-after-rotation", activity_after)

        run.check("checkpoint-B", lambda: take_checkpoint("B"))

        def sizes():
            a, b = need("A", "B")
            expect(b["tree_size"] > a["tree_size"], f"B.tree_size {b['tree_size']} <= A.tree_size {a['tree_size']}")
            expect(a["tree_size"] >= 8, f"A covers only {a['tree_size']} entries: too little was audited")
            r = w.admin("GET", "/v1/admin/audit/checkpoint")
            expect(r.status_code == 200, f"GET /v1/admin/audit/checkpoint: {describe(r)}")
            latest = body_json(r, "latest checkpoint")
            check_checkpoint(latest, w.base, need("origin"))
            expect(latest["tree_size"] >= b["tree_size"], f"latest tree_size {latest['tree_size']} < B's")
            if latest["tree_size"] == b["tree_size"]:
                expect(latest["jws"] == b["jws"], "the latest checkpoint has B's size but another JWS")
        run.check("checkpoint-latest", sizes)

        # 4: keys and signatures
        def keys():
            r = w.admin("GET", "/v1/admin/audit/keys")
            expect(r.status_code == 200, f"GET /v1/admin/audit/keys: {describe(r)}")
            jwks = body_json(r, "audit keys")
            expect(isinstance(jwks.get("keys"), list) and jwks["keys"], f"no keys: {jwks}")
            for k in jwks["keys"]:
                expect(k.get("kty") == "EC" and k.get("crv") == "P-256" and k.get("kid"), f"key {k}")
                expect("d" not in k, "a private key is published")
            st["jwks"] = jwks
            a, b = need("A", "B")
            expect(a["kid"] != b["kid"], f"A and B are signed by the same key {a['kid']!r} despite the rotation")
            if st.get("rotated_kid"):
                expect(b["kid"] == st["rotated_kid"], f"B's kid {b['kid']!r} is not the new key {st['rotated_kid']!r}")
            for cp in (a, b):
                jwk_for(jwks, cp["kid"])
            public = w.get("/.well-known/jwks.json")
            expect(public.status_code == 200, f"JWKS: {describe(public)}")
            expect(b["kid"] in {k.get("kid") for k in public.json().get("keys", [])}, "B's key is not in the JWKS")
        run.check("audit-keys-jwks", keys)

        def joserfc_verify():
            jwks = need("jwks")
            for name in ("A", "B"):
                cp = need(name)
                claims = verify_joserfc(cp["jws"], jwk_for(jwks, cp["kid"]))
                expect(claims == jws_parts(cp["jws"])[1], f"{name}: payload differs")
        run.check("checkpoint-jws-joserfc", joserfc_verify)

        def pyjwt_verify():
            jwks = need("jwks")
            for name in ("A", "B"):
                cp = need(name)
                claims = verify_pyjwt(cp["jws"], jwk_for(jwks, cp["kid"]))
                for field in ("tree_size", "root_hash", "chain_head", "origin"):
                    expect(claims.get(field) == cp[field], f"{name}: {field} {claims.get(field)!r} != {cp[field]!r}")
                expect(claims.get("iss") == w.base, f"{name}: iss {claims.get('iss')!r}")
        run.check("checkpoint-jws-pyjwt", pyjwt_verify)

        def jws_negative():
            jwks = need("jwks")
            a, b = need("A", "B")
            key_b, key_a = jwk_for(jwks, b["kid"]), jwk_for(jwks, a["kid"])
            bad_sig = flip_signature(b["jws"])
            h, p, s = b["jws"].split(".")
            claims = jws_parts(b["jws"])[1]
            claims["tree_size"] += 1
            bad_payload = f"{h}.{b64url_json(claims)}.{s}"
            for what, token, jwk in (("flipped signature", bad_sig, key_b), ("changed payload", bad_payload, key_b),
                                     ("B under A's key", b["jws"], key_a)):
                expect(rejects(lambda: verify_joserfc(token, jwk)), f"joserfc accepted {what}")
                expect(rejects(lambda: verify_pyjwt(token, jwk)), f"PyJWT accepted {what}")
            expect(rejects(lambda: pyjwt.decode(b["jws"], pyjwt.PyJWK(key_b, algorithm="ES256").key,
                                                algorithms=["HS256"])), "PyJWT accepted a non-ES256 algorithm list")
        run.check("checkpoint-jws-tampered-rejected", jws_negative)

        def checkpoint_list():
            jwks = need("jwks")
            a, b = need("A", "B")
            r = w.admin("GET", "/v1/admin/audit/checkpoints", params={"limit": "1000"})
            expect(r.status_code == 200, f"GET /v1/admin/audit/checkpoints: {describe(r)}")
            cps = body_json(r, "checkpoints").get("checkpoints")
            expect(isinstance(cps, list) and len(cps) >= 2, f"checkpoints: {str(cps)[:300]}")
            prev = None
            for i, cp in enumerate(cps):
                claims = check_checkpoint(cp, w.base, need("origin"))
                jwk = jwk_for(jwks, cp["kid"])
                expect(verify_joserfc(cp["jws"], jwk) == claims, f"checkpoint {i}: joserfc payload differs")
                verify_pyjwt(cp["jws"], jwk)
                if prev is None:
                    expect("prev" not in claims, f"the first checkpoint has prev {claims.get('prev')!r}")
                else:
                    want = hashlib.sha256(prev["jws"].encode()).hexdigest()
                    expect(claims.get("prev") == want,
                           f"checkpoint {i} (tree size {cp['tree_size']}): prev {claims.get('prev')!r} != "
                           f"SHA-256 of the previous JWS {want}")
                    expect(cp["tree_size"] > prev["tree_size"], f"tree sizes not increasing at {i}")
                prev = cp
            jwss = [cp["jws"] for cp in cps]
            expect(a["jws"] in jwss and b["jws"] in jwss, "A or B is not in the checkpoint list")
            ia, ib = jwss.index(a["jws"]), jwss.index(b["jws"])
            if ib == ia + 1:
                expect(jws_parts(b["jws"])[1].get("prev") == hashlib.sha256(a["jws"].encode()).hexdigest(),
                       "B.prev is not SHA-256 of A's JWS")
            expect({cp["kid"] for cp in cps} <= {k["kid"] for k in jwks["keys"]}, "a signing key is not published")
            st["checkpoints"] = cps
        run.check("checkpoint-list-signatures-and-prev-chain", checkpoint_list)

        # 5: the JSON-lines export
        def export_jsonl():
            r = w.admin("GET", "/v1/admin/audit/export", params={"format": "jsonl", "since": "0"})
            expect(r.status_code == 200, f"export: {describe(r)}")
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
            expect(ctype == "application/x-ndjson", f"Content-Type is {ctype!r}")
            lines = parse_ndjson(r.content)
            expect(lines, "the export is empty")
            objs, last = [], None
            for i, line in enumerate(lines, start=1):
                expect(line and b"\r" not in line, f"line {i} is empty or has a CR")
                obj = json.loads(line)
                expect(isinstance(obj, dict) and obj.get("seq") == i, f"line {i} has seq {obj.get('seq')!r}")
                t = time_micros(obj.get("time"))
                expect(last is None or t >= last, f"time goes backwards at seq {i}")
                last = t
                objs.append(obj)
            st["lines"], st["objs"] = lines, objs
            st["leaves"] = [leaf_hash(x) for x in lines]
            st["chains"] = chain_values(lines)
            expect(len(lines) >= need("B")["tree_size"], f"{len(lines)} entries < B.tree_size")
        run.check("export-jsonl-seq-and-time", export_jsonl)

        def entry_format():
            for obj in need("objs"):
                keys = list(obj)
                unknown = [k for k in keys if k not in ENTRY_KEYS]
                expect(not unknown, f"seq {obj['seq']}: undocumented keys {unknown}")
                expect(keys == sorted(keys, key=ENTRY_KEYS.index), f"seq {obj['seq']}: keys out of order {keys}")
                expect(obj.get("kind") in ENTRY_KINDS, f"seq {obj['seq']}: kind {obj.get('kind')!r}")
                for k in ("action", "actor"):
                    expect(isinstance(obj.get(k), str) and obj[k], f"seq {obj['seq']}: {k} {obj.get(k)!r}")
                if "decision" in obj:
                    expect(obj["decision"] in ("allow", "deny"), f"seq {obj['seq']}: decision {obj['decision']!r}")
                if "agent" in obj:
                    expect(obj["agent"].startswith("spiffe://"), f"seq {obj['seq']}: agent {obj['agent']!r}")
                for k in ("policies", "delegation"):
                    if k in obj:
                        expect(isinstance(obj[k], list) and all(isinstance(v, str) for v in obj[k]),
                               f"seq {obj['seq']}: {k}")
                for k in ("trust", "latency_us"):
                    if k in obj:
                        expect(is_int(obj[k]), f"seq {obj['seq']}: {k} is not an integer")
                if "request_digest" in obj:
                    expect(re.match(r"^sha256:[0-9a-f]{64}$", obj["request_digest"]), f"seq {obj['seq']}: digest")
                if "details" in obj:
                    d = obj["details"]
                    expect(isinstance(d, dict) and all(isinstance(v, str) for v in d.values()),
                           f"seq {obj['seq']}: details is not an object of strings")
        run.check("export-entry-format", entry_format)

        def activity_recorded():
            objs = need("objs")
            actions = {o.get("action") for o in objs}
            for a in ("agent.register", "agent.join_token", "agent.state", "key.rotate", "token.revoke"):
                expect(a in actions, f"no {a} entry (actions: {sorted(x for x in actions if x)})")
            agent = need("revoked")
            mine = [o for o in objs if o.get("agent") == agent.spiffe_id]
            expect(any(o["action"] == "agent.register" and o["actor"] == "admin" for o in mine),
                   f"no agent.register by admin for {agent.spiffe_id}")
            expect(any(o.get("decision") == "deny" for o in objs),
                   "no entry with decision deny (the attestation failure and the quarantined token request)")
            if "attested" in st:
                expect(any(o.get("agent") == st["attested"].spiffe_id and o.get("decision") == "deny" for o in objs),
                       "the attestation failure is not recorded as a denial for its agent")
        run.check("export-records-the-activity", activity_recorded)

        def roots():
            leaves, chains = need("leaves", "chains")
            cps = list(st.get("checkpoints", [])) + [need("A"), need("B")]
            for cp in cps:
                n = cp["tree_size"]
                expect(n <= len(leaves), f"checkpoint {n} is beyond the export ({len(leaves)})")
                root = mth(leaves, 0, n).hex()
                expect(root == cp["root_hash"],
                       f"checkpoint {n}: root_hash {cp['root_hash']} != MTH of the exported entries {root}")
                expect(chains[n - 1].hex() == cp["chain_head"],
                       f"checkpoint {n}: chain_head {cp['chain_head']} != {chains[n - 1].hex()}")
        run.check("checkpoint-roots-and-chain-heads-match-export", roots)

        def export_since():
            lines = need("lines")
            k = len(lines) // 2
            r = w.admin("GET", "/v1/admin/audit/export", params={"format": "jsonl", "since": str(k)})
            expect(r.status_code == 200, f"export since {k}: {describe(r)}")
            part = parse_ndjson(r.content)
            expect(part, f"export since {k} is empty")
            first = json.loads(part[0])["seq"]
            expect(first in (k, k + 1), f"export since={k} starts at seq {first}")
            for i, line in enumerate(part):
                if first + i - 1 < len(lines):
                    expect(line == lines[first + i - 1],
                           f"export since={k}: seq {first + i} differs from the full export")
        run.check("export-since", export_since)

        # 6: proofs
        def inclusion():
            leaves, lines = need("leaves", "lines")
            a, b = need("A", "B")
            for cp in (a, b):
                n = cp["tree_size"]
                root = bytes.fromhex(cp["root_hash"])
                for s in sorted({1, 2, (n + 1) // 2, n - 1, n} - {0}):
                    r = w.admin("GET", "/v1/admin/audit/proof/inclusion", params={"seq": str(s), "tree_size": str(n)})
                    expect(r.status_code == 200, f"inclusion seq={s} tree_size={n}: {describe(r)}")
                    p = body_json(r, "inclusion proof")
                    expect(p.get("seq") == s and p.get("leaf_index") == s - 1 and p.get("tree_size") == n,
                           f"seq/leaf_index/tree_size: {json.dumps(p)[:300]}")
                    expect(p.get("leaf_hash") == leaves[s - 1].hex(), f"seq {s}: leaf_hash differs from the export's")
                    expect(p.get("root_hash") == cp["root_hash"], f"tree {n}: root_hash differs from the checkpoint")
                    proof = [unhex(h, "proof hash") for h in p.get("proof", [])]
                    expect(verify_inclusion(s - 1, n, leaf_hash(lines[s - 1]), proof, root),
                           f"inclusion proof for seq {s} in {n} does not verify")
                    expect(proof == inclusion_path(s - 1, leaves[:n]), f"seq {s} in {n}: not the RFC 9162 PATH")
                    if proof:
                        st["neg_inclusion"] = (s, n, proof, root)
        run.check("inclusion-proofs", inclusion)

        def inclusion_negative():
            leaves, lines = need("leaves", "lines")
            s, n, proof, root = need("neg_inclusion")
            leaf = leaf_hash(lines[s - 1])
            expect(verify_inclusion(s - 1, n, leaf, proof, root), "the proof no longer verifies")
            for i in range(len(proof)):
                expect(not verify_inclusion(s - 1, n, leaf, flipped(proof, i, 1), root), f"flipped proof[{i}] accepted")
            other = s % n  # another entry (index), inside the tree
            expect(not verify_inclusion(s - 1, n, leaves[other], proof, root), "a wrong leaf was accepted")
            changed = lines[s - 1].replace(b'"seq":', b'"seq": ', 1)
            expect(changed != lines[s - 1], "could not change the line")
            expect(not verify_inclusion(s - 1, n, leaf_hash(changed), proof, root), "a changed line was accepted")
            changed_leaves = list(leaves[:n])
            changed_leaves[s - 1] = leaf_hash(changed)
            expect(mth(changed_leaves) != root, "a changed line still gives the checkpoint's root")
            expect(not verify_inclusion(s, n, leaf, proof, root), "a wrong index was accepted")
        run.check("inclusion-proof-negative", inclusion_negative)

        def consistency():
            leaves = need("leaves")
            a, b = need("A", "B")
            na, nb = a["tree_size"], b["tree_size"]
            for m, n, r1 in ((na, nb, a["root_hash"]), (1, nb, leaves[0].hex()), (nb, nb, b["root_hash"])):
                r = w.admin("GET", "/v1/admin/audit/proof/consistency", params={"first": str(m), "second": str(n)})
                expect(r.status_code == 200, f"consistency {m} -> {n}: {describe(r)}")
                p = body_json(r, "consistency proof")
                expect(p.get("first") == m and p.get("second") == n, f"first/second: {json.dumps(p)[:300]}")
                expect(p.get("first_root") == r1, f"{m} -> {n}: first_root {p.get('first_root')} != {r1}")
                expect(p.get("second_root") == b["root_hash"], f"{m} -> {n}: second_root differs from B's root")
                proof = [unhex(h, "proof hash") for h in p.get("proof", [])]
                expect(verify_consistency(m, n, bytes.fromhex(r1), bytes.fromhex(b["root_hash"]), proof),
                       f"consistency proof {m} -> {n} does not verify")
                expect(proof == consistency_path(m, leaves[:n]), f"{m} -> {n}: not the RFC 9162 PROOF")
                if m == n:
                    expect(proof == [], f"{m} -> {n}: the proof is not empty")
                else:
                    st.setdefault("neg_consistency", (m, n, bytes.fromhex(r1), bytes.fromhex(b["root_hash"]), proof))
        run.check("consistency-proofs", consistency)

        def consistency_negative():
            m, n, r1, r2, proof = need("neg_consistency")
            for i in range(len(proof)):
                expect(not verify_consistency(m, n, r1, r2, flipped(proof, i, 1)), f"flipped proof[{i}] accepted")
            expect(not verify_consistency(m, n, r2, r1, proof), "swapped roots accepted")
            expect(not verify_consistency(m, n, r1, r2, proof[:-1]), "a shortened proof accepted")
            expect(not verify_consistency(m + 1, n, r1, r2, proof), "a wrong first size accepted")
        run.check("consistency-proof-negative", consistency_negative)

        def proof_errors():
            b = need("B")
            n = b["tree_size"]
            for path, params in (("inclusion", {"seq": str(n + 1), "tree_size": str(n)}),
                                 ("inclusion", {"seq": "0", "tree_size": str(n)}),
                                 ("inclusion", {"seq": "1", "tree_size": str(10 ** 9)}),
                                 ("consistency", {"first": str(n), "second": str(n - 1)}),
                                 ("consistency", {"first": "1", "second": str(10 ** 9)})):
                r = w.admin("GET", f"/v1/admin/audit/proof/{path}", params=params)
                expect(400 <= r.status_code < 500, f"{path} {params}: expected 4xx, got {describe(r)}")
        run.check("proof-bad-requests", proof_errors)

        # 7: OCSF
        def ocsf():
            r = w.admin("GET", "/v1/admin/audit/export", params={"format": "ocsf", "since": "0"})
            expect(r.status_code == 200, f"OCSF export: {describe(r)}")
            events = [json.loads(x) for x in parse_ndjson(r.content)]
            r2 = w.admin("GET", "/v1/admin/audit/export", params={"format": "jsonl", "since": "0"})
            after = parse_ndjson(r2.content)
            before = need("lines")
            expect(len(before) <= len(events) <= len(after),
                   f"{len(events)} OCSF lines, {len(before)}..{len(after)} JSON lines")
            objs = [json.loads(x) for x in after]
            seqs = []
            for i, ev in enumerate(events, start=1):
                expect(isinstance(ev, dict), f"line {i} is not an object")
                for k in ("class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id", "status_id"):
                    expect(is_int(ev.get(k)), f"line {i}: {k} is {ev.get(k)!r}, not an integer")
                expect(ev["type_uid"] == ev["class_uid"] * 100 + ev["activity_id"],
                       f"line {i}: type_uid {ev['type_uid']} != class_uid*100 + activity_id")
                md = ev.get("metadata")
                expect(isinstance(md, dict) and isinstance(md.get("version"), str) and md["version"],
                       f"line {i}: metadata.version")
                expect(isinstance(md.get("product"), dict) and isinstance(md["product"].get("name"), str),
                       f"line {i}: metadata.product.name")
                seq = md.get("sequence")
                if not is_int(seq):
                    uid = md.get("uid")
                    seq = int(uid) if isinstance(uid, str) and uid.isdigit() else uid
                expect(is_int(seq), f"line {i}: neither metadata.sequence nor metadata.uid is the seq")
                expect(1 <= seq <= len(objs), f"line {i}: seq {seq} is not in the log")
                src = objs[seq - 1]
                expect(abs(ev["time"] - time_micros(src["time"]) // 1000) <= 1,
                       f"seq {seq}: time {ev['time']} ms != the entry's {src['time']}")
                if src.get("decision") == "deny":
                    expect(ev["status_id"] == 2, f"seq {seq}: a denial with status_id {ev['status_id']} (2 = Failure)")
                elif src.get("decision") == "allow":
                    expect(ev["status_id"] == 1, f"seq {seq}: an allow with status_id {ev['status_id']} (1 = Success)")
                seqs.append(seq)
            expect(seqs == list(range(1, len(events) + 1)), "the OCSF lines do not map one to one onto seq 1..n")
        run.check("export-ocsf", ocsf)

        # 8: events
        def events(params):
            r = w.admin("GET", "/v1/admin/audit/events", params=params)
            expect(r.status_code == 200, f"events {params}: {describe(r)}")
            body = body_json(r, "events")
            evs = body.get("events")
            expect(isinstance(evs, list), f"events {params}: {str(body)[:300]}")
            expect("next" in body and (body["next"] is None or is_int(body["next"])), f"events {params}: next")
            seqs = [e.get("seq") for e in evs]
            expect(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"events {params}: not ascending by seq")
            objs = need("objs")
            for e in evs:
                if e["seq"] <= len(objs):
                    expect(e == objs[e["seq"] - 1], f"events {params}: seq {e['seq']} differs from the export")
            return evs, body["next"]

        def events_agent():
            agent = need("enrolled")
            objs = need("objs")
            want = [o["seq"] for o in objs if o.get("agent") == agent.spiffe_id]
            expect(len(want) >= 3, f"only {len(want)} exported entries for {agent.spiffe_id}")
            for ref in (agent.spiffe_id, agent.name):
                evs, nxt = events({"agent": ref, "limit": "100"})
                got = [e["seq"] for e in evs if e["seq"] <= len(objs)]
                expect(got == want, f"agent={ref}: seqs {got} != {want}")
                expect(all(e.get("agent") == agent.spiffe_id for e in evs), f"agent={ref}: another agent's entry")
                expect(nxt is None, f"agent={ref}: next is {nxt} although everything fit")
        run.check("events-agent-filter", events_agent)

        def events_deny():
            objs = need("objs")
            want = [o["seq"] for o in objs if o.get("decision") == "deny"]
            evs, _ = events({"decision": "deny", "limit": "100"})
            expect(all(e.get("decision") == "deny" for e in evs), "decision=deny returned another decision")
            got = [e["seq"] for e in evs if e["seq"] <= len(objs)]
            expect(got == want[:100], f"decision=deny: seqs {got} != {want}")
        run.check("events-decision-filter", events_deny)

        def events_after_paging():
            objs = need("objs")
            k = len(objs) // 2
            evs, _ = events({"after": str(k), "limit": "5"})
            expect([e["seq"] for e in evs] == list(range(k + 1, k + 1 + len(evs))) and len(evs) == 5,
                   f"after={k}&limit=5: seqs {[e['seq'] for e in evs]}")
            page, nxt = events({"limit": "3"})
            expect([e["seq"] for e in page] == [1, 2, 3], f"limit=3: seqs {[e['seq'] for e in page]}")
            expect(nxt is not None, "limit=3 on a longer log: next is null")
            page2, _ = events({"after": str(page[-1]["seq"]), "limit": "3"})
            expect([e["seq"] for e in page2] == [4, 5, 6], f"the page after seq 3: {[e['seq'] for e in page2]}")
        run.check("events-after-and-paging", events_after_paging)

        def events_time():
            objs = need("objs")
            mid = objs[len(objs) // 2]
            t = time_micros(mid["time"])
            evs, _ = events({"since": mid["time"], "limit": "100"})
            expect(all(time_micros(e["time"]) >= t for e in evs), f"since={mid['time']}: an earlier entry")
            later = [o["seq"] for o in objs if time_micros(o["time"]) > t][:50]
            got = {e["seq"] for e in evs}
            expect(all(s in got for s in later), f"since={mid['time']}: later entries missing")
            evs, _ = events({"until": mid["time"], "limit": "100"})
            expect(all(time_micros(e["time"]) <= t for e in evs), f"until={mid['time']}: a later entry")
            earlier = [o["seq"] for o in objs if time_micros(o["time"]) < t][:50]
            got = {e["seq"] for e in evs}
            expect(all(s in got for s in earlier), f"until={mid['time']}: earlier entries missing")
        run.check("events-since-until", events_time)
    finally:
        status = server.stop()
    st["stop_status"] = status

    # 9: the CLI on the stopped server's data
    data = server.data
    cp_b_path = os.path.join(workdir, "cpB.json")
    cp_a_path = os.path.join(workdir, "cpA.json")

    def save_checkpoints():
        a, b = need("A", "B")
        with open(cp_b_path, "w") as f:
            json.dump(b, f)
        with open(cp_a_path, "w") as f:
            json.dump(a, f)
        copy_data(data, os.path.join(workdir, "pristine"))
        st["pristine"] = os.path.join(workdir, "pristine", "warden.sqlite")
    run.check("server-stop-and-save-checkpoints", save_checkpoints)

    def db_matches_export():
        db, lines = need("pristine", "lines")
        con = connect(db)
        try:
            rows = audit_rows(con)
            st["db_rows"] = rows
            expect(len(rows) >= len(lines), f"the database has {len(rows)} entries, the export had {len(lines)}")
            for (seq, entry, chain), line, c in zip(rows, lines, need("chains")):
                expect(entry == line, f"seq {seq}: the stored entry differs from the exported line")
                expect(decode_hash(chain) == c, f"seq {seq}: the stored chain value differs from the recomputed one")
            nodes_layout_before["pristine"] = nodes_layout(con, [leaf_hash(e) for _, e, _ in rows])
        finally:
            con.close()
        ref = reference_verify(db, need("B"))
        expect(ref["ok"], f"the reference verifier rejects the untouched data: {ref}")
    run.check("database-matches-export", db_matches_export)

    def triggers():
        db = need("pristine")
        probe = os.path.join(workdir, "probe")
        copy_data(os.path.dirname(db), probe)
        con = connect(os.path.join(probe, "warden.sqlite"))
        try:
            for sql in ("UPDATE audit_log SET entry = entry WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1",
                        "DELETE FROM audit_checkpoints"):
                try:
                    con.execute(sql)
                except sqlite3.DatabaseError:
                    continue
                raise CheckFailed(f"{sql!r} was not stopped by a trigger")
        finally:
            con.close()
            shutil.rmtree(probe, ignore_errors=True)
    run.check("database-append-only-triggers", triggers)

    def verify_ok():
        b = need("B")
        rc, body, err = run_verify(binary, data, cp_b_path)
        expect(rc == 0 and body.get("ok") is True, f"exit {rc}: {json.dumps(body)[:400]} {err[:200]}")
        rows = need("db_rows")
        expect(body.get("entries") == len(rows), f"entries {body.get('entries')} != {len(rows)} stored")
        expect(is_int(body.get("checkpoints")) and body["checkpoints"] >= len(st.get("checkpoints", [1, 2])),
               f"checkpoints {body.get('checkpoints')!r}")
        size = body.get("tree_size")
        expect(is_int(size) and b["tree_size"] <= size <= len(rows), f"tree_size {size!r}")
        want = mth([leaf_hash(e) for _, e, _ in rows], 0, size).hex()
        expect(body.get("root_hash") == want, f"root_hash {body.get('root_hash')} != MTH of {size} entries {want}")
    run.check("verify-cli-ok", verify_ok)

    def verify_older():
        need("A")
        rc, body, err = run_verify(binary, data, cp_a_path)
        expect(rc == 0 and body.get("ok") is True, f"with checkpoint A: exit {rc}: {json.dumps(body)[:400]}")
    run.check("verify-cli-older-checkpoint", verify_older)

    def verify_forged_checkpoint():
        b = need("B")
        forged = dict(b)
        forged["jws"] = flip_signature(b["jws"])
        forged["signature"] = forged["jws"].split(".")[2]
        attacker = new_key()
        header, claims = jws_parts(b["jws"])
        claims["root_hash"] = sha256(b"another history").hex()
        resigned = dict(b, root_hash=claims["root_hash"])
        resigned["jws"] = jo_jws.serialize_compact(header, json.dumps(claims).encode(), attacker, algorithms=["ES256"])
        resigned["signature"] = resigned["jws"].split(".")[2]
        for what, cp in (("flipped signature", forged), ("signed by another key under B's kid", resigned)):
            path = os.path.join(workdir, "cp-forged.json")
            with open(path, "w") as f:
                json.dump(cp, f)
            rc, body, err = run_verify(binary, data, path)
            expect(rc != 0 and body.get("ok") is False, f"{what}: exit {rc}: {json.dumps(body)[:300]}")
            reason = str((body.get("failure") or {}).get("reason", ""))
            expect(re.search(r"checkpoint|signature", reason, re.I), f"{what}: reason {reason!r}")
    run.check("verify-cli-rejects-forged-checkpoint", verify_forged_checkpoint)

    # 10: tampering on copies of the data directory
    def tamper_setup():
        lines, a = need("lines", "A")
        k = choose_k(lines, a["tree_size"])
        expect(k is not None, f"no entry with {ADMIN_ACTOR.decode()} between seq 2 and {a['tree_size'] - 2}")
        st["k"] = k
        print(f"note: tampering around seq {k} (A covers {a['tree_size']}, B {need('B')['tree_size']} entries); "
              f"audit_nodes layout recognised: {nodes_layout_before.get('pristine')}", flush=True)
    run.check("tamper-setup", tamper_setup)

    for case, with_cp, by_reference in TAMPER_CASES:
        def tamper_case(case=case, with_cp=with_cp, by_reference=by_reference):
            k, b = need("k", "B")
            copy = os.path.join(workdir, "tamper-" + case)
            copy_data(data, copy)
            db = os.path.join(copy, "warden.sqlite")
            nodes_layout_before[db] = nodes_layout_before.get("pristine")
            done = tamper(db, case, k)
            if by_reference:
                ref = reference_verify(db, b if with_cp else None)
                why = judge(case, ref, k, b["tree_size"])
                expect(why is None, f"harness: the tampering ({done}) is not what it should be: {why}")
            if case == "truncated":
                rc, body, err = run_verify(binary, copy, None)
                expect(isinstance(body.get("ok"), bool), f"without --checkpoint: {json.dumps(body)[:300]}")
                print(f"note: truncated log without --checkpoint: ok={body['ok']} (either is acceptable)", flush=True)
            rc, body, err = run_verify(binary, copy, cp_b_path if with_cp else None)
            why = judge(case, body, k, b["tree_size"], nodes_rewritten=nodes_layout_before[db] is not False)
            expect(why is None, f"{done}: {why}")
            expect(rc != 0, f"{done}: verify reported the failure but exited 0")
            shutil.rmtree(copy, ignore_errors=True)
        run.check("tamper-" + case, tamper_case)

    if st.get("stop_status") not in (0, None):
        print(f"note: the server exited with status {st['stop_status']} after SIGTERM", flush=True)
    return run.summary()


def main(argv) -> int:
    if len(argv) == 2 and argv[1] == "--selftest":
        return selftest()
    if len(argv) != 3:
        print("usage: audit_interop.py WARDEN_BIN WORKDIR | audit_interop.py --selftest", file=sys.stderr)
        return 2
    return live(os.path.abspath(argv[1]), os.path.abspath(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
