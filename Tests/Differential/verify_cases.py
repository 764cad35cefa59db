#!/usr/bin/env python3
"""Re-checks a directory written by gen_cases.py against cedarpy, reading only the files.

Usage: verify_cases.py --root DIR

For every DIR/case-K.json: loads the policies and entities named in it (paths relative
to DIR), re-runs every request through cedarpy and compares decision, reason and errors.
Also checks that every parse-errors.jsonl text is rejected and every accepted.jsonl text
is accepted. Exits 1 on any mismatch. Useful after editing the generator, and as a
reference for what a Swift-side runner has to do.
"""

import argparse
import glob
import json
import os
import re
import sys

import cedarpy

ERR_RE = re.compile(r"^error while evaluating policy `([^`]+)`")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    bad = 0
    n_cases = n_reqs = 0
    for path in sorted(glob.glob(os.path.join(args.root, "case-*.json"))):
        if path.endswith(".entities.json"):
            continue
        with open(path, encoding="utf-8") as f:
            case = json.load(f)
        with open(os.path.join(args.root, case["policies"]), encoding="utf-8") as f:
            policies = f.read()
        with open(os.path.join(args.root, case["entities"]), encoding="utf-8") as f:
            entities = f.read()
        n_cases += 1
        reqs = [{k: q[k] for k in ("principal", "action", "resource", "context")} for q in case["requests"]]
        results = cedarpy.is_authorized_batch(reqs, policies, entities)
        for q, res in zip(case["requests"], results):
            n_reqs += 1
            resp = res._authz_resp
            diag = resp.get("diagnostics", {})
            got = (resp["decision"].lower(), sorted(diag.get("reason", [])),
                   sorted({ERR_RE.match(m).group(1) for m in diag.get("errors", []) if ERR_RE.match(m)}))
            want = (q["decision"], sorted(q["reason"]), sorted(q["errors"]))
            if got != want:
                bad += 1
                print("MISMATCH %s %s: want %s got %s" % (path, q["description"], want, got))
    for name, expect_error in (("parse-errors.jsonl", True), ("accepted.jsonl", False)):
        p = os.path.join(args.root, name)
        if not os.path.exists(p):
            continue
        with open(p, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                try:
                    cedarpy.PolicySet.from_str(row["policies"])
                    err = False
                except ValueError:
                    err = True
                if err != expect_error or row["error"] != expect_error:
                    bad += 1
                    print("MISMATCH %s: %r" % (name, row["policies"][:200]))
    print("checked %d cases, %d requests, %d mismatches" % (n_cases, n_reqs, bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
