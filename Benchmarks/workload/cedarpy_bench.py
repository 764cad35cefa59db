#!/usr/bin/env python3
"""Run a gen_workload.py workload through the Rust Cedar engine (PyPI cedarpy 4.12.2).

Usage:
    .venv/bin/python Benchmarks/workload/cedarpy_bench.py DIR [--sizes 10,100,1000,10000]
                     [--json] [--warmup 200] [--no-expected]

For each size it parses DIR/policies-<size>.cedar into a cedarpy.PolicySet and
DIR/entities.json into a cedarpy.Entities handle once, sends every request in
DIR/requests.jsonl through cedarpy.is_authorized_batch (one batch, the handles
passed once; the first --warmup requests are sent once, untimed, before it), and
reads each response's metrics["authz_duration_micros"].

That metric is the Rust engine's own timing of Authorizer::is_authorized (an
Instant taken just around that call, reported as whole microseconds, truncated):
it excludes parsing the request and context, converting JSON, and Python. The
mean of whole wall-clock time per request for the batch (Python, JSON and request
building included) is reported beside it as wall_mean_us.

It writes DIR/expected-<size>.jsonl, one line per request in request order:
    {"i": 0, "decision": "Allow"|"Deny",
     "reasons": ["policy12", ...],        # parser-assigned ids, ascending
     "reason_ids": ["agent_svc-...", ...],# the same policies' @id annotations
     "errors": ["policy5", ...],          # policies whose evaluation raised an error
     "error_ids": [...]}                  # their @id annotations
Policies are named policy0, policy1, ... in file order, as Cedar's parser names them.

Needs: pip install cedarpy==4.12.2
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

import cedarpy

ENGINE = "cedarpy 4.12.2"
ERROR_POLICY = re.compile(r"error while evaluating policy `([^`]+)`")
ID_ANNOTATION = re.compile(r'^@id\("((?:[^"\\]|\\.)*)"\)', re.M)


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def policy_order(text):
    """@id annotations in file order; index i is policy{i} (every policy here has one)."""
    return [json.loads('"' + m + '"') for m in ID_ANNOTATION.findall(text)]


def pid_key(pid):
    m = re.fullmatch(r"policy(\d+)", pid)
    return (0, int(m.group(1)), pid) if m else (1, 0, pid)


def run_size(workdir, size, entities, requests, warmup, write_expected):
    with open(os.path.join(workdir, f"policies-{size}.cedar")) as f:
        text = f.read()
    t0 = time.perf_counter()
    ps = cedarpy.PolicySet.from_str(text)
    parse_s = time.perf_counter() - t0
    if len(ps) != size:
        raise SystemExit(f"policies-{size}.cedar holds {len(ps)} policies, expected {size}")
    annotations = policy_order(text)

    if warmup:
        cedarpy.is_authorized_batch(requests[:warmup], ps, entities)
    t0 = time.perf_counter()
    results = cedarpy.is_authorized_batch(requests, ps, entities)
    wall_s = time.perf_counter() - t0
    if len(results) != len(requests):
        raise SystemExit(f"{len(results)} results for {len(requests)} requests")

    durations, allow, deny, errored = [], 0, 0, 0
    lines = []
    for i, r in enumerate(results):
        m = r.metrics
        if "authz_duration_micros" not in m:
            raise SystemExit(f"request {i}: no authz_duration_micros in metrics: {m}")
        durations.append(m["authz_duration_micros"])
        decision = r.decision.value
        if decision == "Allow":
            allow += 1
        elif decision == "Deny":
            deny += 1
        else:
            raise SystemExit(f"request {i}: decision {decision}")
        reasons = sorted(r.diagnostics.reasons, key=pid_key)
        # Check the claim that policy{i} is the i-th policy of the file, on every answer.
        for p, a in r.diagnostics.id_annotations_by_reason.items():
            if annotations[int(p[6:])] != a:
                raise SystemExit(f"request {i}: {p} is @id({a!r}), not the file's policy {p[6:]}")
        errs = []
        for msg in r.diagnostics.errors:
            mm = ERROR_POLICY.search(msg)
            if not mm:
                raise SystemExit(f"request {i}: an error that names no policy: {msg}")
            errs.append(mm.group(1))
        errs = sorted(set(errs), key=pid_key)
        if errs:
            errored += 1
        ann = lambda p: annotations[int(p[6:])] if pid_key(p)[0] == 0 else p
        lines.append(json.dumps({"i": i, "decision": decision, "reasons": reasons,
                                 "reason_ids": [ann(p) for p in reasons], "errors": errs,
                                 "error_ids": [ann(p) for p in errs]},
                                separators=(",", ":")))
    if write_expected:
        with open(os.path.join(workdir, f"expected-{size}.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")
    durations.sort()
    return {
        "median_us": statistics.median(durations),
        "p99_us": percentile(durations, 99),
        "mean_us": round(statistics.fmean(durations), 2),
        "max_us": durations[-1],
        "wall_mean_us": round(wall_s * 1e6 / len(requests), 2),
        "allow": allow,
        "deny": deny,
        "requests_with_errors": errored,
        "policy_parse_ms": round(parse_s * 1e3, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a directory written by gen_workload.py")
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--warmup", type=int, default=200,
                    help="requests sent untimed before the measured pass (default 200)")
    ap.add_argument("--no-expected", action="store_true", help="do not write expected-<size>.jsonl")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    t_start = time.perf_counter()
    with open(os.path.join(args.dir, "entities.json")) as f:
        t0 = time.perf_counter()
        entities = cedarpy.Entities.from_json_str(f.read())
        ent_ms = (time.perf_counter() - t0) * 1e3
    with open(os.path.join(args.dir, "requests.jsonl")) as f:
        requests = [json.loads(line) for line in f if line.strip()]

    out = {"engine": ENGINE, "requests": len(requests), "entities": len(entities),
           "metric": 'AuthzResult.metrics["authz_duration_micros"]', "sizes": {}}
    for size in sizes:
        res = run_size(args.dir, size, entities, requests, args.warmup, not args.no_expected)
        out["sizes"][str(size)] = res
        if not args.json:
            print(f"{size:>6} policies: median {res['median_us']} us  p99 {res['p99_us']} us  "
                  f"mean {res['mean_us']} us  max {res['max_us']} us  "
                  f"(wall {res['wall_mean_us']} us/req)  allow {res['allow']}  deny {res['deny']}  "
                  f"requests with errors {res['requests_with_errors']}  "
                  f"parse {res['policy_parse_ms']} ms", flush=True)
    out["entities_parse_ms"] = round(ent_ms, 1)
    out["total_s"] = round(time.perf_counter() - t_start, 2)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{ENGINE}: {len(requests)} requests, {len(entities)} entities "
              f"(parsed in {out['entities_parse_ms']} ms); total {out['total_s']} s")


if __name__ == "__main__":
    sys.exit(main())
