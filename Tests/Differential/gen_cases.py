#!/usr/bin/env python3
"""Random differential test cases for Warden's Cedar implementation.

Generates random Cedar policy sets, entity stores and requests over a small
universe, asks the reference Rust engine (PyPI `cedarpy==4.12.2`, Cedar 4.12)
for the expected answers, and writes them in the cedar-integration-tests
format (the format of /work/shared/cedar-corpus).

Usage:
    gen_cases.py --seed N --count C --out DIR [--requests R] [--max-list L]

Output (all paths inside test JSON files are relative to DIR, so the runner
must be called with `--root DIR`):
    DIR/case-K.cedar           policies (ids policy0, policy1, ... in file order)
    DIR/case-K.entities.json   entities (schemaless JSON, __entity/__extn escapes, tags)
    DIR/case-K.json            {"policies", "entities", "schema": null,
                                "shouldValidate": false, "requests": [...]}
    DIR/parse-errors.jsonl     {"policies": text, "error": true, "message": cedar's message}
                               policy texts cedarpy rejects (our parser must reject them)
    DIR/accepted.jsonl         {"policies": text, "error": false, "est": Cedar JSON (EST)}
                               policy texts cedarpy accepts (our parser must accept them)
    DIR/entity-errors.jsonl    {"entities": text, "error": true, "message": ...}
                               entity documents cedarpy rejects (cycles, bad extension
                               values, duplicate uids, ...)
    DIR/summary.json           counts (deterministic; no timings)

K runs from 0 to C-1; skipped cases (cedarpy rejected the policies or the entities)
leave a gap. Output is a pure function of (seed, count, options): each case K uses
its own RNG seeded with "seed:K", so case K is the same for every --count > K.
Statistics and the runtime go to stderr.
"""

import argparse
import json
import os
import random
import re
import sys
import time

import cedarpy

I64_MAX = 2 ** 63 - 1
I64_MIN = -(2 ** 63)

# --------------------------------------------------------------------------
# Universe
# --------------------------------------------------------------------------

ENTITY_TYPES = ["User", "Group", "Doc", "NS::Agent"]
BASE_IDS = {
    "User": ["alice", "bob", "carol"],
    "Group": ["admins", "staff", "all"],
    "Doc": ["d1", "d2", "d3"],
    "NS::Agent": ["x", "y"],
}
# ids that stress string escaping in policy text and JSON
WEIRD_IDS = ["", "q\"u\\o", "\u00fcn\u00ef\U0001F600", "a b\nc", "*", "\x00", "tab\there", "'"]
# ids that never exist as entities
GHOST_IDS = ["zed", "nobody"]

ACTIONS = ["view", "edit", "delete", "readOnly", "write", "all"]
ACTION_EDGES = [("view", "readOnly"), ("edit", "write"), ("delete", "write"),
                ("readOnly", "all"), ("write", "all"), ("view", "write"), ("delete", "all")]

TARGET_SCOPE = 0.9   # fraction of requests aimed at the scope of some permit policy
P_PERMIT = 0.75      # probability that a policy is a permit

RESERVED = {"true", "false", "if", "then", "else", "in", "is", "like", "has", "__cedar"}

# attribute name -> kind. Kinds: L Lbig S B SETS SETL SETE E REC IP DEC DT DUR
ENTITY_ATTRS = [
    ("age", "L"), ("level", "L"), ("big", "Lbig"), ("name", "S"), ("active", "B"),
    ("labels", "SETS"), ("nums", "SETL"), ("owner", "E"), ("readers", "SETE"),
    ("profile", "REC"), ("addr", "IP"), ("balance", "DEC"), ("created", "DT"),
    ("ttl", "DUR"), ("a b", "L"), ("if", "S"), ("", "B"),
]
CTX_ATTRS = [
    ("n", "L"), ("s", "S"), ("flag", "B"), ("ip", "IP"), ("when", "DT"), ("d", "DUR"),
    ("nums", "SETL"), ("rec", "REC"), ("ent", "E"), ("amt", "DEC"), ("ents", "SETE"),
    ("big", "Lbig"), ("labels", "SETS"),
]
TAG_KEYS = [("t1", "L"), ("t2", "B"), ("color", "S"), ("who", "E"), ("", "L")]

ALL_KINDS = ["L", "Lbig", "S", "B", "SETS", "SETL", "SETE", "E", "REC", "IP", "DEC", "DT", "DUR"]
KIND_TYPE = {"L": "L", "Lbig": "L", "S": "S", "B": "B", "SETS": "SET", "SETL": "SET",
             "SETE": "SET", "E": "E", "REC": "REC", "IP": "IP", "DEC": "DEC", "DT": "DT",
             "DUR": "DUR"}

STR_POOL = ["alice", "bob", "", "a*b", "ab", "abc", "staff", "d1", "*", "\\", "x\ny",
            "q\"", "\u00fcn\u00ef", "\U0001F600", "red", "t1", "color", "a b", "\x00", "'"]
LONG_POOL = [-2, -1, 0, 0, 1, 1, 2, 3, 5, 18, 21, 100]

IP_VALID = ["10.0.0.1", "10.1.2.3", "192.168.1.1", "127.0.0.1", "127.255.255.255", "0.0.0.0",
            "224.0.0.1", "255.255.255.255", "10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8",
            "::1", "::", "ff02::1", "2001:db8::1", "2001:db8::/32",
            "fe80::1/64", "10.0.0.1/32", "10.0.0.1/0", "::/0", "ff00::/8", "1.2.3.4/24"]
IP_INVALID = ["", "1.2.3", "256.0.0.1", "::g", "10.0.0.1/33", "01.2.3.4", "1.2.3.4/08",
              "::1/129", "1.2.3.4 ", "localhost", "1.2.3.4/", "::ffff:1.2.3", "::ffff:10.0.0.1"]
DEC_VALID = ["1.0", "1.5", "-0.25", "0.0", "2.0", "1.0000", "922337203685477.5807",
             "-922337203685477.5808", "0.0001", "100.5", "-1.0", "3.14"]
DEC_INVALID = ["1", "1.", ".5", "1.23456", "abc", "-", "1.0e3", "+1.0",
               "922337203685477.5808", "-922337203685477.5809", "1,0", " 1.0"]
DT_VALID = ["2024-01-01", "2024-01-01T12:00:00Z", "2024-01-01T12:00:00.500Z",
            "2024-01-02T00:00:00+0100", "2023-12-31T23:59:59-0030", "1970-01-01",
            "2024-02-29", "2023-06-15T08:30:00Z", "1969-12-31T23:59:59.999Z",
            "2024-01-01T00:00:00.000+2359", "0001-01-01", "9999-12-31T23:59:59Z"]
DT_INVALID = ["2024-13-01", "2023-02-29", "2024-01-01T25:00:00Z", "2024-1-1",
              "2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00+01:00",
              "2016-12-31T23:59:60Z", "", "2024-01-01T00:00:00.5Z", "20240101",
              "2024-01-01T00:00:00+2400", "+2024-01-01"]
DUR_VALID = ["1h", "1d", "-2h30m", "1d2h3m4s5ms", "0ms", "90m", "86400s", "-1ms", "24h",
             "1440m", "2d", "0s", "3600000ms", "-1d", "106751991167d"]
DUR_INVALID = ["1x", "", "1h1d", "--1h", "1.5h", "h", "1 h", "9223372036854775808ms",
               "106751991168d", "1d-1h", "ms", "1H"]

RECORD_KEYS = ["a", "b", "dept", "level", "inner", "ok", "n", "x y", "if"]

ERR_RE = re.compile(r"^error while evaluating policy `([^`]+)`")


def cedar_str(s, rng=None, like=False):
    """Cedar string literal for s, with randomly varied (valid) escapes."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "*" and like:
            out.append("\\*")
        elif ch == "\n":
            out.append("\\n" if (rng is None or rng.random() < 0.7) else "\\u{a}")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\x00":
            out.append("\\0" if (rng is None or rng.random() < 0.6) else "\\u{0}")
        elif o < 0x20 or o == 0x7F:
            out.append("\\u{%x}" % o)
        elif rng is not None and ch == "'" and rng.random() < 0.5:
            out.append("\\'")
        elif rng is not None and o < 0x80 and ch.isalnum() and rng.random() < 0.03:
            out.append("\\x%02X" % o if rng.random() < 0.5 else "\\u{%x}" % o)
        elif rng is not None and o >= 0x80 and rng.random() < 0.3:
            out.append("\\u{%X}" % o if rng.random() < 0.5 else "\\u{%06x}" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def is_ident(s):
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) is not None and s not in RESERVED


class X:
    """A generated expression: text plus its precedence level.

    Levels: 0 if-then-else, 1 ||, 2 &&, 3 relation (== < in has like is),
    4 + -, 5 *, 6 unary (chain of `op`, length `u`), 7 member/primary."""
    __slots__ = ("t", "lvl", "op", "u")

    def __init__(self, t, lvl, op=None, u=0):
        self.t, self.lvl, self.op, self.u = t, lvl, op, u


class CaseGen:
    def __init__(self, rng):
        self.r = rng
        self.ids = {t: list(v) for t, v in BASE_IDS.items()}
        if rng.random() < 0.35:
            self.ids[rng.choice(ENTITY_TYPES)].append(rng.choice(WEIRD_IDS))
        self.universe = [(t, i) for t in ENTITY_TYPES for i in self.ids[t]]
        self.p_err = rng.choice([0.02, 0.04, 0.07])   # type-confusion rate in expressions
        self.parent_map = {}   # uid -> parent uids (as generated)
        self.scopes = []       # (effect, principal scope, action scope, resource scope)
        self.in_entities = False

    # ------------------------------------------------------------------ helpers
    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    def uid(self, types=None, ghost=0.05):
        t = self.pick(types or ENTITY_TYPES)
        if self.chance(ghost):
            return (t, self.pick(GHOST_IDS))
        return (t, self.pick(self.ids[t]))

    # --------------------------------------------------------------- JSON values
    def jvalue(self, kind, depth=0):
        r = self.r
        if depth == 0 and self.chance(0.03):
            kind = self.pick(ALL_KINDS)  # type confusion in data
        if kind == "L":
            return self.pick(LONG_POOL)
        if kind == "Lbig":
            if self.chance(0.5):
                return I64_MAX - r.randrange(3)
            return I64_MIN + r.randrange(3)
        if kind == "S":
            return self.pick(STR_POOL)
        if kind == "B":
            return self.chance(0.5)
        if kind == "SETS":
            return [self.pick(STR_POOL) for _ in range(r.randrange(4))]
        if kind == "SETL":
            return [self.pick(LONG_POOL) for _ in range(r.randrange(4))]
        if kind == "SETE":
            return [self.jentity() for _ in range(r.randrange(4))]
        if kind == "E":
            return self.jentity()
        if kind == "REC":
            rec = {}
            if self.chance(0.85):
                rec["dept"] = self.pick(STR_POOL)
            if self.chance(0.8):
                rec["level"] = self.pick(LONG_POOL)
            if self.chance(0.85) and depth < 2:
                inner = {}
                if self.chance(0.9):
                    inner["ok"] = self.chance(0.5)
                if self.chance(0.85):
                    inner["n"] = self.pick(LONG_POOL)
                if self.chance(0.2):
                    inner["deep"] = self.jvalue("REC", depth + 1)
                rec["inner"] = inner
            if self.chance(0.1):
                # looks like an entity reference but is a record (no __entity escape)
                rec["ref"] = {"type": "User", "id": self.pick(self.ids["User"])}
            if self.chance(0.1):
                rec["x y"] = self.pick(LONG_POOL)
            return rec
        if kind == "IP":
            return self.jextn("ip", IP_VALID, IP_INVALID)
        if kind == "DEC":
            return self.jextn("decimal", DEC_VALID, DEC_INVALID)
        if kind == "DUR":
            return self.jextn("duration", DUR_VALID, DUR_INVALID)
        if kind == "DT":
            if self.chance(0.15):
                return {"__extn": {"fn": "offset", "args": [
                    {"__extn": {"fn": "datetime", "arg": self.pick(DT_VALID[:9])}},
                    {"__extn": {"fn": "duration", "arg": self.pick(DUR_VALID[:13])}}]}}
            return self.jextn("datetime", DT_VALID, DT_INVALID)
        raise AssertionError(kind)

    def jextn(self, fn, valid, invalid):
        if self.in_entities and self.chance(0.0004):
            return {"__extn": {"fn": fn, "arg": self.pick(invalid)}}
        return {"__extn": {"fn": fn, "arg": self.pick(valid)}}

    def jentity(self):
        t, i = self.uid(ghost=0.1)
        return {"__entity": {"type": t, "id": i}}

    # ----------------------------------------------------------------- entities
    def gen_entities(self):
        self.in_entities = True
        try:
            return self._gen_entities()
        finally:
            self.in_entities = False

    def _gen_entities(self):
        r = self.r
        nonaction = list(self.universe)
        order = list(nonaction)
        r.shuffle(order)
        # Groups later in the topological order most of the time
        order.sort(key=lambda u: (1 if u[0] == "Group" else 0) + r.random() * 0.8)
        pos = {u: k for k, u in enumerate(order)}
        ents = []
        present = []
        for u in nonaction:
            if not self.chance(0.92):
                continue
            present.append(u)
            later = order[pos[u] + 1:]
            parents = []
            if later:
                for _ in range(r.choice([0, 1, 1, 1, 2, 2, 3])):
                    cand = [v for v in later if v[0] == "Group"] if self.chance(0.7) else later
                    if cand:
                        p = self.pick(cand)
                        if p not in parents:
                            parents.append(p)
            if self.chance(0.03):
                parents.append((self.pick(ENTITY_TYPES), self.pick(GHOST_IDS)))
            attrs = {}
            for name, kind in ENTITY_ATTRS:
                if self.chance(0.75 if name not in ("if", "") else 0.1):
                    attrs[name] = self.jvalue(kind)
            self.parent_map[u] = parents
            e = {"uid": {"type": u[0], "id": u[1]}, "attrs": attrs,
                 "parents": [{"type": p[0], "id": p[1]} for p in parents]}
            if self.chance(0.7):
                tags = {}
                for name, kind in TAG_KEYS:
                    if self.chance(0.7 if name else 0.1):
                        tags[name] = self.jvalue(kind)
                e["tags"] = tags
            ents.append(e)
        # action entities
        for a in ACTIONS:
            if not self.chance(0.9):
                continue
            parents = [q for (p, q) in ACTION_EDGES if p == a and self.chance(0.75)]
            self.parent_map[("Action", a)] = [("Action", q) for q in parents]
            e = {"uid": {"type": "Action", "id": a}, "attrs": {},
                 "parents": [{"type": "Action", "id": q} for q in parents]}
            if self.chance(0.1):
                e["attrs"] = {"level": self.pick(LONG_POOL)}
            ents.append(e)
        r.shuffle(ents)
        # rare deliberate entity-level errors (reported in entity-errors.jsonl)
        if self.chance(0.01) and len(ents) >= 2:
            kind = r.randrange(3)
            if kind == 0:   # cycle
                a, b = ents[0], ents[1]
                a["parents"].append(dict(b["uid"]))
                b["parents"].append(dict(a["uid"]))
            elif kind == 1:  # conflicting duplicate uid
                dup = json.loads(json.dumps(ents[0]))
                dup["attrs"]["dup"] = 1
                ents.append(dup)
            else:           # unknown extension function
                ents[0]["attrs"]["bad"] = {"__extn": {"fn": "ipaddr", "arg": "1.2.3.4"}}
        elif self.chance(0.03) and ents:
            ents.append(json.loads(json.dumps(ents[0])))  # identical duplicate is accepted
        self.present = present
        return ents

    def gen_context(self):
        ctx = {}
        for name, kind in CTX_ATTRS:
            if self.chance(0.85):
                v = self.jvalue(kind)
                if v is not None:
                    ctx[name] = v
        return ctx

    # -------------------------------------------------------------- expressions
    def par(self, x, minlvl):
        if x.lvl < minlvl or (self.chance(0.03)):
            return "(" + x.t + ")"
        return x.t

    def unary(self, op, x):
        if x.lvl == 7 or (x.lvl == 6 and x.op == op and x.u < 4):
            return X(op + x.t, 6, op, (x.u if x.lvl == 6 else 0) + 1)
        return X(op + "(" + x.t + ")", 6, op, 1)

    def binop(self, a, op, b, lvl):
        # left-associative: left operand may sit at `lvl`, right needs lvl+1
        ws = " " if self.chance(0.9) else ""
        return X(self.par(a, lvl) + ws + op + ws + self.par(b, lvl + 1), lvl)

    def rel(self, a, op, b):
        return X(self.par(a, 4) + " " + op + " " + self.par(b, 4), 3)

    def member(self, x, suffix):
        return X(self.par(x, 7) + suffix, 7)

    def access(self, x, name):
        if is_ident(name) and self.chance(0.8):
            return self.member(x, "." + name)
        return self.member(x, "[" + cedar_str(name, self.r) + "]")

    def call(self, recv, meth, *args):
        return self.member(recv, "." + meth + "(" + ", ".join(a.t for a in args) + ")")

    def fn(self, name, *args):
        return X(name + "(" + ", ".join(a.t for a in args) + ")", 7)

    def lit_long(self, v):
        return X(str(v), 6, "-", 1) if v < 0 else X(str(v), 7)

    def entity_lit(self, u):
        t, i = u
        sep = "::" if self.chance(0.95) else " :: "
        return X(t.replace("::", sep) + sep + cedar_str(i, self.r), 7)

    def var(self, names=("principal", "resource") * 10 + ("action",)):
        return X(self.pick(names), 7)

    def attr_of(self, kind_pred, ctx_p=0.4):
        """Access to an attribute (of principal/resource/context) whose usual kind matches."""
        if self.chance(ctx_p):
            names = [n for n, k in CTX_ATTRS if kind_pred(k)]
            if names:
                return self.access(X("context", 7), self.pick(names))
        names = [n for n, k in ENTITY_ATTRS if kind_pred(k) and (n not in ("if", "") or self.chance(0.1))]
        if not names:
            names = [n for n, k in ENTITY_ATTRS if kind_pred(k)]
        base = self.var() if self.chance(0.93) else self.entity_lit(self.uid())
        return self.access(base, self.pick(names))

    def gen(self, ty, d):
        if self.chance(self.p_err) and d > 0:
            ty = self.pick([t for t in ("B", "L", "S", "E", "SET", "REC", "IP", "DEC", "DT", "DUR") if t != ty])
        if d <= 0 or self.chance(0.25):
            return getattr(self, "leaf_" + ty)()
        return getattr(self, "gen_" + ty)(d - 1)

    def gen_any(self, d):
        return self.gen(self.pick(["B", "L", "L", "S", "E", "E", "SET", "REC", "IP", "DEC", "DT", "DUR"]), d)

    def ite(self, ty, d):
        return X("if " + self.gen("B", d).t + " then " + self.gen(ty, d).t + " else " + self.gen(ty, d).t, 0)

    # leaves --------------------------------------------------------------
    def leaf_B(self):
        c = self.r.randrange(8)
        if c <= 1:
            return X(self.pick(["true", "false"]), 7)
        if c == 2:
            return self.access(X("context", 7), "flag")
        if c == 3:
            return self.attr_of(lambda k: k == "B", 0.0)
        if c == 4:
            return self.access(self.access(self.access(self.var(), "profile"), "inner"), "ok")
        if c == 5:
            if self.chance(0.3):
                return self.call(self.leaf_E(), "getTag", X(cedar_str("t2"), 7))
            return X(self.pick(["true", "false"]), 7)
        if c == 6:
            return self.rel(self.leaf_E(), "in", self.leaf_E())
        rec, key = self.pick([(X("context", 7), "flag"), (self.access(X("context", 7), "rec"), "ok"),
                              (self.access(self.access(X("context", 7), "rec"), "inner"), "ok"),
                              (self.access(self.var(), "profile"), "ok"), (X("{}", 7), "a"),
                              (X("{ok: true}", 7), "ok"), (X("{a: false, b: true}", 7), "b")])
        return self.access(rec, key)

    def leaf_L(self):
        c = self.r.randrange(9)
        if c <= 2:
            return self.lit_long(self.pick(LONG_POOL))
        if c == 3:
            return self.lit_long(self.pick([I64_MAX, I64_MIN, I64_MAX - 1, I64_MIN + 1, 4611686018427387904, -4611686018427387904]))
        if c in (4, 5):
            return self.attr_of(lambda k: k in ("L", "Lbig"))
        if c == 6:
            base, rec = self.pick([(self.var(), "profile"), (X("context", 7), "rec")])
            return self.access(self.access(base, rec), "level")
        if c == 7:
            if self.chance(0.3):
                return self.call(self.leaf_E(), "getTag", X(cedar_str(self.pick(["t1", "", "t1"])), 7))
            return self.lit_long(self.pick(LONG_POOL))
        return self.access(self.access(self.access(X("context", 7), "rec"), "inner"), "n")

    def leaf_S(self):
        c = self.r.randrange(6)
        if c <= 2:
            return X(cedar_str(self.pick(STR_POOL), self.r), 7)
        if c == 3:
            return self.attr_of(lambda k: k == "S")
        if c == 4:
            return self.access(self.access(self.var(), "profile"), "dept")
        if self.chance(0.3):
            return self.call(self.leaf_E(), "getTag", X(cedar_str("color"), 7))
        return X(cedar_str(self.pick(STR_POOL), self.r), 7)

    def leaf_E(self):
        c = self.r.randrange(8)
        if c <= 2:
            return self.var(("principal", "resource", "principal", "action"))
        if c <= 5:
            if self.chance(0.15):
                return self.entity_lit(("Action", self.pick(ACTIONS)))
            return self.entity_lit(self.uid())
        if c == 6:
            return self.attr_of(lambda k: k == "E")
        if self.chance(0.3):
            return self.call(self.var(), "getTag", X(cedar_str("who"), 7))
        return self.var()

    def leaf_SET(self):
        c = self.r.randrange(6)
        if c <= 1:
            return self.attr_of(lambda k: k.startswith("SET"))
        if c == 2:
            return X("[" + ", ".join(self.leaf_E().t for _ in range(self.r.randrange(4))) + "]", 7)
        if c == 3:
            return X("[" + ", ".join(self.lit_long(self.pick(LONG_POOL)).t for _ in range(self.r.randrange(4))) + "]", 7)
        if c == 4:
            return X("[" + ", ".join(cedar_str(self.pick(STR_POOL), self.r) for _ in range(self.r.randrange(4))) + "]", 7)
        return X("[]", 7)

    def leaf_REC(self):
        c = self.r.randrange(5)
        if c == 0:
            return X("context", 7)
        if c == 1:
            return self.access(X("context", 7), "rec")
        if c == 2:
            return self.access(self.var(), "profile")
        if c == 3:
            return X("{}", 7)
        return self.access(self.access(self.var(), "profile"), "inner")

    def leaf_ext(self, fn, valid, invalid, attr_kind):
        c = self.r.randrange(5)
        if c <= 2:
            s = self.pick(invalid) if self.chance(0.12) else self.pick(valid)
            return self.fn(fn, X(cedar_str(s, self.r), 7))
        return self.attr_of(lambda k: k == attr_kind)

    def leaf_IP(self):
        return self.leaf_ext("ip", IP_VALID, IP_INVALID, "IP")

    def leaf_DEC(self):
        return self.leaf_ext("decimal", DEC_VALID, DEC_INVALID, "DEC")

    def leaf_DT(self):
        return self.leaf_ext("datetime", DT_VALID, DT_INVALID, "DT")

    def leaf_DUR(self):
        return self.leaf_ext("duration", DUR_VALID, DUR_INVALID, "DUR")

    # composites ------------------------------------------------------------
    B_WEIGHTS = [("and", 10), ("or", 12), ("not", 5), ("ite", 3), ("cmpL", 8), ("cmpT", 4),
                 ("eq", 7), ("in", 8), ("has", 6), ("like", 4), ("is", 4), ("set", 7),
                 ("hasTag", 3), ("ip", 3), ("dec", 2), ("odd", 1), ("idiom", 8), ("guard", 16)]

    def gen_B(self, d):
        total = sum(w for _, w in self.B_WEIGHTS)
        x = self.r.randrange(total)
        for name, w in self.B_WEIGHTS:
            if x < w:
                return getattr(self, "b_" + name)(d)
            x -= w
        raise AssertionError

    def b_and(self, d):
        return self.binop(self.gen("B", d), "&&", self.gen("B", d), 2)

    def b_or(self, d):
        return self.binop(self.gen("B", d), "||", self.gen("B", d), 1)

    def b_not(self, d):
        return self.unary("!", self.gen("B", d))

    def b_ite(self, d):
        return self.ite("B", d)

    def b_cmpL(self, d):
        return self.rel(self.gen("L", d), self.pick(["==", "!=", "<", "<=", ">", ">="]), self.gen("L", d))

    def b_cmpT(self, d):
        ty = self.pick(["DT", "DUR"])
        return self.rel(self.gen(ty, d), self.pick(["==", "!=", "<", "<=", ">", ">="]), self.gen(ty, d))

    def b_eq(self, d):
        if self.chance(0.7):
            ty = self.pick(["L", "S", "E", "E", "SET", "REC", "IP", "DEC", "DT", "DUR", "B"])
            a, b = self.gen(ty, d), self.gen(ty, d)
        else:
            a, b = self.gen_any(d), self.gen_any(d)
        return self.rel(a, self.pick(["==", "!="]), b)

    def b_in(self, d):
        rhs = self.gen("E", d) if self.chance(0.6) else self.gen("SET", d)
        return self.rel(self.gen("E", d), "in", rhs)

    def b_has(self, d):
        return self.gen_has(d)

    def b_like(self, d):
        return self.gen_like(d)

    def b_is(self, d):
        t = self.pick(ENTITY_TYPES + ["Action", "Foo"])
        x = X(self.par(self.gen("E", d), 4) + " is " + t, 3)
        if self.chance(0.4):
            x = X(x.t + " in " + self.par(self.gen("E", d) if self.chance(0.7) else self.gen("SET", d), 4), 3)
        return x

    def b_set(self, d):
        m = self.pick(["contains", "contains", "containsAll", "containsAny", "isEmpty"])
        s = self.gen("SET", d)
        if m == "isEmpty":
            return self.call(s, m)
        if m == "contains":
            return self.call(s, m, self.gen_any(d))
        return self.call(s, m, self.gen("SET", d))

    def b_hasTag(self, d):
        key = self.pick([n for n, _ in TAG_KEYS] + ["nope"])
        arg = X(cedar_str(key, self.r), 7) if self.chance(0.8) else self.gen("S", d)
        return self.call(self.gen("E", d), "hasTag", arg)

    def b_ip(self, d):
        ipx = self.gen("IP", d)
        m = self.pick(["isIpv4", "isIpv6", "isLoopback", "isMulticast", "isInRange", "isInRange"])
        if m == "isInRange":
            return self.call(ipx, m, self.gen("IP", d))
        return self.call(ipx, m)

    def b_dec(self, d):
        m = self.pick(["lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"])
        return self.call(self.gen("DEC", d), m, self.gen("DEC", d))

    def b_odd(self, d):
        # wrong arity / odd calls that parse but fail at runtime
        return self.pick([
            lambda: self.fn("ip"),
            lambda: self.call(self.gen("IP", d), "isInRange", self.gen("IP", d), self.gen("IP", d)),
            lambda: self.call(self.gen("DEC", d), "lessThan"),
            lambda: self.fn("decimal", self.gen("S", d), self.gen("S", d)),
            lambda: self.access(self.gen("S", d), "a"),
            lambda: self.access(self.lit_long(1), "a"),
        ])()

    def b_idiom(self, d):
        return self.idiom(d)

    def b_guard(self, d):
        """`x has a && <predicate on x.a>` (or hasTag/getTag): mostly error-free accesses."""
        if self.chance(0.15):
            e = self.var(("principal", "resource", "principal"))
            key, kind = self.pick(TAG_KEYS)
            guard = self.call(e, "hasTag", X(cedar_str(key, self.r), 7))
            acc = self.call(e, "getTag", X(cedar_str(key, self.r), 7))
        else:
            if self.chance(0.3):
                base = X("context", 7)
                name, kind = self.pick(CTX_ATTRS)
            else:
                base = self.var(("principal", "resource", "principal", "resource", "action")) if self.chance(0.9) \
                    else self.entity_lit(self.uid())
                name, kind = self.pick(ENTITY_ATTRS)
            path = name if is_ident(name) and self.chance(0.8) else cedar_str(name, self.r)
            guard = X(self.par(base, 4) + " has " + path, 3)
            acc = self.access(base, name)
        pred = self.pred_on(acc, KIND_TYPE[kind], d)
        if self.chance(0.15):
            return self.binop(self.unary("!", X("(" + guard.t + ")", 7)), "||", pred, 1)
        return self.binop(guard, "&&", pred, 2)

    def pred_on(self, x, ty, d):
        c = self.r.randrange(3)
        if ty == "L":
            return self.rel(x, self.pick(["==", "!=", "<", "<=", ">", ">="]), self.gen("L", d))
        if ty == "S":
            if c == 0:
                return X(self.par(x, 4) + " like " + self.gen_like(d).t.rsplit(" like ", 1)[1], 3)
            return self.rel(x, self.pick(["==", "!="]), self.gen("S", d))
        if ty == "B":
            return x if c else self.unary("!", x)
        if ty == "E":
            if c == 0:
                return self.rel(x, "==", self.gen("E", d))
            if c == 1:
                return self.rel(self.gen("E", d), "in", x)
            return self.rel(x, "in", self.gen("E", d))
        if ty == "SET":
            if c == 0:
                return self.call(x, "contains", self.gen_any(d))
            if c == 1:
                return self.call(x, self.pick(["containsAny", "containsAll"]), self.gen("SET", d))
            return self.unary("!", self.call(x, "isEmpty"))
        if ty == "REC":
            k = self.pick(["dept", "level", "inner", "ref", "x y"])
            return X(self.par(x, 4) + " has " + (k if is_ident(k) else cedar_str(k)), 3)
        if ty == "IP":
            if c == 0:
                return self.call(x, self.pick(["isIpv4", "isIpv6", "isLoopback", "isMulticast"]))
            return self.call(x, "isInRange", self.gen("IP", d))
        if ty == "DEC":
            return self.call(x, self.pick(["lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"]), self.gen("DEC", d))
        if ty in ("DT", "DUR"):
            return self.rel(x, self.pick(["==", "!=", "<", "<=", ">", ">="]), self.gen(ty, d))
        raise AssertionError(ty)

    def idiom(self, d):
        """Typical authorization-policy shapes, so requests often hit."""
        r = self.r
        c = r.randrange(10)
        if c == 0:
            return self.rel(self.access(X("resource", 7), "owner"), "==", X("principal", 7))
        if c == 1:
            return self.rel(X("principal", 7), "in", self.access(X("resource", 7), "readers"))
        if c == 2:
            return self.call(self.access(X("resource", 7), "labels"), "contains", self.access(X("context", 7), "s"))
        if c == 3:
            return self.rel(self.access(X("principal", 7), "age"), self.pick([">=", "<", ">"]), self.lit_long(self.pick([0, 1, 2, 18])))
        if c == 4:
            return self.call(self.access(X("context", 7), "ip"), "isInRange", self.fn("ip", X(cedar_str(self.pick(["10.0.0.0/8", "127.0.0.0/8", "::/0", "0.0.0.0/0"])), 7)))
        if c == 5:
            return self.rel(self.access(X("context", 7), "when"), self.pick(["<", ">="]),
                            self.call(self.access(X("principal", 7), "created"), "offset", self.leaf_DUR()))
        if c == 6:
            v = self.pick(["principal", "resource", "context"])
            a = self.pick(["age", "owner", "profile", "n", "flag", "ip"])
            return self.binop(X(v + " has " + a, 3), "&&", self.gen("B", d), 2)
        if c == 7:
            return self.binop(self.unary("!", X("(" + self.gen_has(d).t + ")", 7)), "||", self.gen("B", d), 1)
        if c == 8:
            return self.rel(X("principal", 7), "in", self.entity_lit(("Group", self.pick(self.ids["Group"]))))
        return self.rel(self.access(X("context", 7), "n"), self.pick(["<", "==", ">"]), self.lit_long(self.pick([0, 1, 2])))

    def gen_has(self, d):
        r = self.r
        tgt = self.pick([self.var(), self.var(), X("context", 7), self.leaf_REC(), self.leaf_E()])
        c = r.randrange(6)
        if c == 0:
            path = "profile." + self.pick(["dept", "level", "inner"])
        elif c == 1:
            path = self.pick(["profile.inner.ok", "rec.inner.n", "profile.inner.deep", "rec.inner"])
        else:
            names = [n for n, _ in ENTITY_ATTRS] + [n for n, _ in CTX_ATTRS] + ["dept", "inner", "ok", "nope"]
            n = self.pick(names)
            path = n if (is_ident(n) and self.chance(0.8)) else cedar_str(n, self.r)
        return X(self.par(tgt, 4) + " has " + path, 3)

    def gen_like(self, d):
        s = self.pick(STR_POOL)
        pat = []
        for ch in s:
            c = self.r.random()
            if c < 0.2:
                pat.append("*")
            elif c < 0.25:
                continue
            else:
                pat.append(cedar_str(ch, self.r, like=True)[1:-1])
        if self.chance(0.3):
            pat.insert(self.r.randrange(len(pat) + 1), "*")
        if self.chance(0.1):
            pat.append("**")
        lhs = self.gen("S", d) if self.chance(0.7) else X(cedar_str(s, self.r), 7)
        return X(self.par(lhs, 4) + " like \"" + "".join(pat) + "\"", 3)

    def gen_L(self, d):
        c = self.r.randrange(10)
        if c < 3:
            return self.binop(self.gen("L", d), self.pick(["+", "-"]), self.gen("L", d), 4)
        if c < 5:
            return self.binop(self.gen("L", d), "*", self.gen("L", d), 5)
        if c < 6:
            return self.unary("-", self.gen("L", d))
        if c < 7:
            return self.ite("L", d)
        if c < 9:
            return self.call(self.gen("DUR", d), self.pick(["toMilliseconds", "toSeconds", "toMinutes", "toHours", "toDays"]))
        return self.leaf_L()

    def gen_S(self, d):
        return self.ite("S", d) if self.chance(0.3) else self.leaf_S()

    def gen_E(self, d):
        return self.ite("E", d) if self.chance(0.2) else self.leaf_E()

    def gen_SET(self, d):
        c = self.r.randrange(4)
        if c == 0:
            return self.ite("SET", d)
        if c == 1:
            ty = self.pick(["L", "S", "E", "E", "SET", "REC", "IP", "DT", "B"])
            n = self.r.randrange(4)
            items = [self.gen(ty, d).t for _ in range(n)]
            return X("[" + ", ".join(items) + ("," if items and self.chance(0.05) else "") + "]", 7)
        return self.leaf_SET()

    def gen_REC(self, d):
        c = self.r.randrange(3)
        if c == 0:
            return self.ite("REC", d)
        if c == 1:
            keys = self.r.sample(RECORD_KEYS, self.r.randrange(4))
            parts = []
            for k in keys:
                kt = k if is_ident(k) and self.chance(0.7) else cedar_str(k, self.r)
                parts.append(kt + ": " + self.gen_any(d).t)
            return X("{" + ", ".join(parts) + "}", 7)
        return self.leaf_REC()

    def gen_IP(self, d):
        return self.ite("IP", d) if self.chance(0.15) else self.leaf_IP()

    def gen_DEC(self, d):
        return self.ite("DEC", d) if self.chance(0.15) else self.leaf_DEC()

    def gen_DT(self, d):
        c = self.r.randrange(6)
        if c == 0:
            return self.call(self.gen("DT", d), "offset", self.gen("DUR", d))
        if c == 1:
            return self.call(self.gen("DT", d), "toDate")
        if c == 2:
            return self.ite("DT", d)
        return self.leaf_DT()

    def gen_DUR(self, d):
        c = self.r.randrange(6)
        if c == 0:
            return self.call(self.gen("DT", d), "durationSince", self.gen("DT", d))
        if c == 1:
            return self.call(self.gen("DT", d), "toTime")
        if c == 2:
            return self.ite("DUR", d)
        return self.leaf_DUR()

    # ----------------------------------------------------------------- policies
    def scope_pr(self, var, types_eq, types_in):
        """Returns (text, structure); structure is ("any",) ("eq", u) ("in", u) ("is", T) ("isin", T, u)."""
        c = self.r.random()
        if c < 0.5:
            return var, ("any",)
        if c < 0.62:
            u = self.uid(types_eq)
            return var + " == " + self.entity_lit(u).t, ("eq", u)
        if c < 0.82:
            u = self.uid(types_in)
            return var + " in " + self.entity_lit(u).t, ("in", u)
        t = self.pick(ENTITY_TYPES)
        if c < 0.92:
            return var + " is " + t, ("is", t)
        u = self.uid(types_in)
        return var + " is " + t + " in " + self.entity_lit(u).t, ("isin", t, u)

    def scope_action(self):
        c = self.r.random()
        if c < 0.5:
            return "action", ("any",)
        if c < 0.68:
            a = ("Action", self.pick(ACTIONS))
            return "action == " + self.entity_lit(a).t, ("eq", a)
        if c < 0.83:
            a = ("Action", self.pick(ACTIONS))
            return "action in " + self.entity_lit(a).t, ("in", a)
        acts = [("Action", a) for a in self.r.sample(ACTIONS, self.r.randrange(4))]
        return "action in [" + ", ".join(self.entity_lit(a).t for a in acts) + "]", ("inset", acts)

    def is_descendant(self, u, target):
        seen, stack = [], [u]
        while stack:
            v = stack.pop()
            if v == target:
                return True
            if v in seen:
                continue
            seen.append(v)
            stack.extend(self.parent_map.get(v, []))
        return False

    def satisfying(self, scope, pool):
        """Members of pool (uids) that satisfy a scope structure (may be empty)."""
        k = scope[0]
        if k == "any":
            return pool
        if k == "eq":
            return [scope[1]]
        if k == "in":
            return [u for u in pool if self.is_descendant(u, scope[1])] or [scope[1]]
        if k == "is":
            return [u for u in pool if u[0] == scope[1]]
        if k == "isin":
            return [u for u in pool if u[0] == scope[1] and self.is_descendant(u, scope[2])]
        if k == "inset":
            return [u for u in pool if any(self.is_descendant(u, t) for t in scope[1])]
        raise AssertionError(k)

    def annotations(self):
        out = []
        keys = self.r.sample(["id", "advice", "flag", "reason", "permit", "if"], self.r.choice([0, 0, 0, 1, 1, 2]))
        for k in keys:
            if self.chance(0.3):
                out.append("@" + k)
            else:
                out.append("@" + k + "(" + cedar_str(self.pick(STR_POOL + ["p" + str(self.r.randrange(9))]), self.r) + ")")
        return out

    def policy(self):
        r = self.r
        effect = "permit" if self.chance(P_PERMIT) else "forbid"
        nl = "\n  " if self.chance(0.5) else " "
        scope = [self.scope_pr("principal", ["User", "NS::Agent", "Group"], ["Group", "Group", "User", "NS::Agent"]),
                 self.scope_action(),
                 self.scope_pr("resource", ["Doc", "Group", "User"], ["Doc", "Group", "Group"])]
        self.scopes.append((effect, scope[0][1], scope[1][1], scope[2][1]))
        scope = [t for t, _ in scope]
        text = ""
        ann = self.annotations()
        if ann:
            text += (" " if self.chance(0.3) else "\n").join(ann) + "\n"
        text += effect + "(" + nl + ("," + nl).join(scope) + (nl.rstrip(" ") if nl != " " else "") + ")"
        if effect == "forbid":
            nconds = r.choice([1, 1, 1, 2])
        else:
            nconds = r.choice([0, 0, 1, 1, 1, 2])
        for _ in range(nconds):
            kw = "when" if self.chance(0.65) else "unless"
            depth = r.choice([1, 2, 2, 3, 3, 4])
            if effect == "permit" and kw == "when" and self.chance(0.25):
                body = self.b_or(depth - 1)   # permits a bit more permissive
            else:
                body = self.gen("B", depth)
            if self.chance(0.1):
                body = X("// note: \"quoted\" */ comment\n    " + body.t, body.lvl)
            text += "\n" + kw + " { " + body.t + " }"
        text += ";"
        if self.chance(0.05):
            text += " // trailing comment"
        return text

    def policies(self):
        n = self.r.choice([1, 2, 2, 3, 3, 4, 5, 6])
        return "\n\n".join(self.policy() for _ in range(n)) + "\n"

    def request(self):
        p = self.uid(["User", "User", "User", "NS::Agent", "Group", "Doc"], ghost=0.05)
        a = ("Action", self.pick(ACTIONS + ["view", "edit"]))
        if self.chance(0.02):
            a = ("Action", "ghost")
        res = self.uid(["Doc", "Doc", "Doc", "Group", "User", "NS::Agent"], ghost=0.05)
        permits = [sc for sc in self.scopes if sc[0] == "permit"]
        if permits and self.chance(TARGET_SCOPE):
            # aim at the scope of one permit policy so that requests often hit
            _, ps, acs, rs = self.pick(permits)
            cand = self.satisfying(ps, self.universe)
            if cand:
                p = self.pick(cand)
            cand = self.satisfying(acs, [("Action", x) for x in ACTIONS])
            if cand:
                a = self.pick(cand)
            cand = self.satisfying(rs, self.universe)
            if cand:
                res = self.pick(cand)
        return p, a, res, self.gen_context()


# --------------------------------------------------------------------------
# Malformed / near-miss policy texts
# --------------------------------------------------------------------------

TOKEN_RE = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|[A-Za-z_][A-Za-z0-9_]*|\d+|==|!=|<=|>=|&&|\|\||::|\s+|.', re.S)
INSERT_TOKENS = ["(", ")", "{", "}", "[", "]", ";", ",", "==", "=", "&&", "&", "||", "|", "in", "if",
                 "then", "else", "@", "::", ".", "!", "-", "+", "*", "is", "has", "like", "when",
                 "unless", "permit", "forbid", "principal", "?principal", "\"", "'", "1", "true",
                 "/*", "%", "$", "#", "9223372036854775808", "__cedar", "\\", ":"]

BAD_SNIPPETS = [
    "!!!!!true", "-----1 == -1", "!-1", "- !true", "-(9223372036854775808) == 0", "9223372036854775808 == 0",
    '"\\q" == "q"', '"\\x80" == ""', '"\\u{110000}" == ""', '"\\u{d800}" == ""', '"\\u{}" == ""',
    '"\\u{0000041}" == "A"', '"\\u0041" == "A"', '"\\*" == "*"', '"abc', "{a:1, a:2} == {}",
    '{"a":1, a:2} == {}', "principal has if", "principal.if", "principal.in", "{is: 1} == {}",
    "context has true", "context.then", "context.__cedar", "principal has a.if", 'principal has a."b"',
    'principal has a["b"]', 'context has "a".b', "1 == 1 == 1", "1 < 2 < 3", "principal is User is User",
    'principal is User::"a"', "1 + if true then 1 else 2 == 2", "principal.ip()", 'ip("1.2.3.4").foo()',
    'isIpv4(ip("1.2.3.4"))', "principal.foo()", "[].containsAny()", "[].isEmpty(1)", '__cedar::ip("1.2.3.4")',
    'foo("x")', 'principal.contains', "true &&", "|| true", "(true", "true)", "[1, 2", "{a: 1", "{a 1}",
    "principal == ?principal", "?resource in principal", "principal like 1", '"a" like "b" like "c"',
    "principal has", "principal is", "if true then 1", "if true 1 else 2", "1 +", "* 1", "principal.",
    'principal[1]', "principal[]", "principal.1", "a", "principal..a", "User::a", 'User::"a"::"b"',
    'User:"a"', "principal in User::", "-", "!", "true false", "'a' == 'a'", "1.5 == 1", "0x10 == 16",
    "1_000 == 1000", "context.a-b", "__cedar == 1", "principal == __cedar::User::\"a\"",
    "ip(\"1.2.3.4\").isIpv4", "principal has a.b.", "principal.getTag()", "1 ==== 1", "1 = 1", "1 <> 2",
    "true and false", "not true", "principal @ 1", "{1: 2} == {}", "[1, 2]]",
]
BAD_POLICIES = [
    'permit(principal in [User::"a"],action,resource);', "permit(principal,action is Action,resource);",
    'permit(principal is User in [Group::"a"],action,resource);', "@a @a permit(principal,action,resource);",
    "permit(principal,action,resource) when {};", "permit(action,principal,resource);",
    "permit(principal,action,resource,context);", "permit(principal,action,resource)",
    'permit(principal == Action::"view",action == User::"a",resource);', "allow(principal,action,resource);",
    'permit(principal == User::"a", action in [Action::"view", User::"x"], resource);',
    "permit(principal,action,resource) when { true }; /* c */", "permit(principal,action,resource);;", ";",
    "permit(principal is Action::\"a\",action,resource);", "permit(principal,action,resource) when { true } where { true };",
    "permit(principal, action, resource) when true;", "permit principal, action, resource;",
    "permit(principal, action);", "permit();", "permit(principal, action, resource) unless { };",
    "@id(\"a\") @id(\"b\") permit(principal, action, resource);", "@id(1) permit(principal, action, resource);",
    "@id(\"a\" permit(principal, action, resource);", "@ permit(principal, action, resource);",
    "@id(\"a\")", "@__cedar permit(principal, action, resource);", "permit(principal == User, action, resource);",
    "permit(principal == User::\"a\" || true, action, resource);", "permit(principal, action == Action, resource);",
    "permit(principal in ?resource, action, resource);", "permit(principal, action in ?principal, resource);",
    "permit(principal, action, resource) when { principal } unless;", "forbid(principal, action, resource) when { true } ;x",
    "permit(principal, action, resource == [Doc::\"d1\"]);", "permit(principal is User == User::\"a\", action, resource);",
    "Permit(principal, action, resource);", "permit(Principal, action, resource);",
    "permit(principal, action in [Action::\"a\", Action::\"b\"] in Action::\"c\", resource);",
    "permit(principal, action, resource) when { principal in [Group::\"a\"] }\n",
]
GOOD_SNIPPETS = [
    "!!!!true", "----1 == 1", "- 9223372036854775808 == 0", "-9223372036854775808 < 0", '"\\x41" == "A"',
    '"\\u{1F600}" != ""', '"\\0" != ""', "\"\\'\" == \"'\"", '{"a b":1}["a b"] == 1', "principal has a.b.c.d",
    'principal has "a b"', "principal has principal", "context.permit", "context has principal.when",
    "principal is Us", 'ip("1.2.3.4").isInRange(ip("1.0.0.0/8"), 1)', "[1,].isEmpty()", "{a:1,}.a == 1",
    "ip()", 'User::"a".age', 'User::"a"["age"]', "1.foo", '"a".foo', 'NS::Agent::"x" in NS :: Agent :: "x"',
    '"a" like "\\\\"', '"\\u{000041}" == "A"', '"" like ""', 'if true then 1 else 2', "1 + \"a\"",
    '-(-(1)) == 1', '!(!(!(!(!true))))', '(((((1)))))', 'principal in [principal, 1]', 'principal.contains',
    'context["if"]', 'context has "if"', 'principal is NS::Agent in NS::Agent::"x"', '[[], [[]], {}]',
    'Action::"view" in [Action::"all"]', 'if if true then false else true then 1 else 2',
]
GOOD_POLICIES = [
    "@a @b(\"x\") permit(principal,action,resource);", "permit(principal,action,resource) when { true } unless { false } when {true};",
    "permit(principal,action,resource) when { 1 };", "@id(\"a\")permit(principal,action,resource);",
    "permit(principal,action,resource)when{true}unless{false};", "permit(principal,action in [],resource);",
    "permit(principal == Action::\"view\",action,resource);", "// only a comment\n", "",
    "@id(\"a\") @ID(\"b\") permit(principal,action,resource);", "@if(\"x\") @permit permit(principal,action,resource);",
    "permit(principal is User in Group::\"staff\", action == Action::\"view\", resource is Doc in Doc::\"d1\");",
    "forbid(principal, action, resource) when { context.n > 0 } unless { principal has age };",
    "permit(\n principal\n ,\n action\n ,\n resource\n )\n ;", "permit(principal, action in [Action::\"view\",], resource);",
    "permit(principal, action, resource) when { principal == NS::Agent::\"x\" };\npermit(principal, action, resource);",
    "permit(principal,action,resource) when { true }; // c",
]


def mutate(rng, base_text):
    c = rng.randrange(10)
    if c == 0:
        return "permit(principal, action, resource) when { %s };" % rng.choice(BAD_SNIPPETS)
    if c == 1:
        return rng.choice(BAD_POLICIES)
    if c == 2:
        if rng.random() < 0.5:
            return "permit(principal, action, resource) when { %s };" % rng.choice(GOOD_SNIPPETS)
        return rng.choice(GOOD_POLICIES)
    toks = TOKEN_RE.findall(base_text)
    idx = [k for k, t in enumerate(toks) if not t.isspace()]
    if not idx:
        return base_text + "("
    k = rng.choice(idx)
    if c == 3:
        del toks[k]
    elif c == 4:
        toks.insert(k, rng.choice(INSERT_TOKENS) + rng.choice(["", " "]))
    elif c == 5:
        j = rng.choice(idx)
        toks[k], toks[j] = toks[j], toks[k]
    elif c == 6:
        toks.insert(k, toks[k])
    elif c == 7:
        return base_text[:rng.randrange(len(base_text) + 1)]
    elif c == 8:
        strs = [k2 for k2 in idx if toks[k2].startswith('"')]
        if strs:
            k2 = rng.choice(strs)
            s = toks[k2]
            p = rng.randrange(1, len(s))
            toks[k2] = s[:p] + rng.choice(["\\q", "\\u{110000}", "\\x80", "\\", "\\u{d800}", "\\u{}", "\\u12", "\\*", "\n", "\\t", "\\'"]) + s[p:]
        else:
            toks.insert(k, '"\\q"')
    else:
        ids = [k2 for k2 in idx if re.fullmatch(r"[A-Za-z_]\w*", toks[k2])]
        if ids:
            toks[rng.choice(ids)] = rng.choice(sorted(RESERVED) + ["permit", "principal", "context", "Action", "x"])
    return "".join(toks)


def policy_key(pid):
    m = re.fullmatch(r"policy(\d+)", pid)
    return (0, int(m.group(1)), "") if m else (1, 0, pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--requests", type=int, default=8, help="requests per case (default 8)")
    ap.add_argument("--max-list", type=int, default=300,
                    help="max lines in parse-errors.jsonl / accepted.jsonl / entity-errors.jsonl (default 300)")
    args = ap.parse_args()

    t0 = time.time()
    out = args.out
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if re.fullmatch(r"case-\d+\.(cedar|json|entities\.json)|parse-errors\.jsonl|accepted\.jsonl|entity-errors\.jsonl|summary\.json", f):
            os.remove(os.path.join(out, f))

    stats = {"cases": 0, "written": 0, "skipped_policy_parse": 0, "skipped_entity_parse": 0,
             "requests": 0, "allow": 0, "deny": 0, "with_errors": 0, "dropped_requests": 0,
             "policies": 0, "unexpected_error_strings": 0}
    parse_errors, accepted, entity_errors = [], [], []
    seen_texts = set()

    def add_text(text, cap_only=False):
        if text in seen_texts:
            return
        try:
            ps = cedarpy.PolicySet.from_str(text)
        except ValueError as e:
            if len(parse_errors) < args.max_list:
                seen_texts.add(text)
                parse_errors.append({"policies": text, "error": True, "message": str(e)})
            return
        if ps.templates():
            return  # templates are out of scope here
        if len(accepted) < args.max_list:
            seen_texts.add(text)
            est = json.loads(cedarpy.policies_to_json_str(text))
            accepted.append({"policies": text, "error": False, "est": est})

    for k in range(args.count):
        stats["cases"] += 1
        rng = random.Random("%d:%d" % (args.seed, k))
        g = CaseGen(rng)
        entities = g.gen_entities()
        policies = g.policies()
        reqs = [g.request() for _ in range(args.requests)]
        mrng = random.Random("%d:%d:mut" % (args.seed, k))
        if len(parse_errors) < args.max_list or len(accepted) < args.max_list:
            add_text(mutate(mrng, policies))
            if k % 10 == 0 and len(accepted) < args.max_list:
                add_text(policies)

        # one entity per line; odd cases escape non-ASCII as \uXXXX (surrogate pairs included)
        ents_text = "[\n" + ",\n".join(json.dumps(e, ensure_ascii=bool(k % 2)) for e in entities) + "\n]"
        try:
            pset = cedarpy.PolicySet.from_str(policies)
        except ValueError as e:
            stats["skipped_policy_parse"] += 1
            if len(parse_errors) < args.max_list and policies not in seen_texts:
                seen_texts.add(policies)
                parse_errors.append({"policies": policies, "error": True, "message": str(e)})
            continue
        try:
            ents = cedarpy.Entities.from_json_str(ents_text)
        except ValueError as e:
            stats["skipped_entity_parse"] += 1
            if len(entity_errors) < args.max_list:
                entity_errors.append({"entities": ents_text, "error": True, "message": str(e)})
            continue
        stats["policies"] += len(pset)

        creqs = [{"principal": {"type": p[0], "id": p[1]}, "action": {"type": a[0], "id": a[1]},
                  "resource": {"type": r[0], "id": r[1]}, "context": ctx} for (p, a, r, ctx) in reqs]
        results = cedarpy.is_authorized_batch(creqs, pset, ents)
        out_reqs = []
        for n, (cr, res) in enumerate(zip(creqs, results)):
            resp = res._authz_resp
            if resp.get("decision") not in ("Allow", "Deny"):
                stats["dropped_requests"] += 1
                continue
            diag = resp.get("diagnostics", {})
            reason = sorted(set(diag.get("reason", [])), key=policy_key)
            err_ids = set()
            for msg in diag.get("errors", []):
                m = ERR_RE.match(msg)
                if m:
                    err_ids.add(m.group(1))
                else:
                    stats["unexpected_error_strings"] += 1
            errors = sorted(err_ids, key=policy_key)
            decision = resp["decision"].lower()
            stats["requests"] += 1
            stats[decision] += 1
            if errors:
                stats["with_errors"] += 1
            out_reqs.append({
                "description": "Request %d" % n,
                "principal": cr["principal"], "action": cr["action"], "resource": cr["resource"],
                "context": cr["context"], "validateRequest": False,
                "decision": decision, "reason": reason, "errors": errors,
            })
        base = "case-%d" % k
        with open(os.path.join(out, base + ".cedar"), "w", encoding="utf-8", newline="\n") as f:
            f.write(policies)
        with open(os.path.join(out, base + ".entities.json"), "w", encoding="utf-8", newline="\n") as f:
            f.write(ents_text + "\n")
        head = {"policies": base + ".cedar", "entities": base + ".entities.json", "schema": None,
                "shouldValidate": False}
        with open(os.path.join(out, base + ".json"), "w", encoding="utf-8", newline="\n") as f:
            f.write("{\n" + "".join("  %s: %s,\n" % (json.dumps(key), json.dumps(v)) for key, v in head.items())
                    + '  "requests": [\n'
                    + ",\n".join("    " + json.dumps(q, ensure_ascii=False) for q in out_reqs)
                    + "\n  ]\n}\n")
        stats["written"] += 1

    for name, rows in (("parse-errors.jsonl", parse_errors), ("accepted.jsonl", accepted),
                       ("entity-errors.jsonl", entity_errors)):
        with open(os.path.join(out, name), "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    stats["parse_errors_lines"] = len(parse_errors)
    stats["accepted_lines"] = len(accepted)
    stats["entity_errors_lines"] = len(entity_errors)
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps({"seed": args.seed, "count": args.count, "requests_per_case": args.requests,
                            "cedarpy": "4.12.2", "stats": stats}, indent=2) + "\n")

    nreq = max(stats["requests"], 1)
    sys.stderr.write(
        "cases %d written %d skipped: policy-parse %d, entity-parse %d (%.1f%%)\n"
        "requests %d: allow %.1f%% deny %.1f%%, with errors %.1f%%, dropped %d, unexpected error strings %d\n"
        "parse-errors.jsonl %d, accepted.jsonl %d, entity-errors.jsonl %d; %.1fs\n" % (
            stats["cases"], stats["written"], stats["skipped_policy_parse"], stats["skipped_entity_parse"],
            100.0 * (stats["cases"] - stats["written"]) / max(stats["cases"], 1),
            stats["requests"], 100.0 * stats["allow"] / nreq, 100.0 * stats["deny"] / nreq,
            100.0 * stats["with_errors"] / nreq, stats["dropped_requests"], stats["unexpected_error_strings"],
            len(parse_errors), len(accepted), len(entity_errors), time.time() - t0))


if __name__ == "__main__":
    main()
