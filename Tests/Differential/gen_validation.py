"""Generates random Cedar schemas and policies and records how the Rust validator (cedarpy 4.12.2,
`validate_policies`, strict mode) judges them, for the Swift validator's differential test.

    python gen_validation.py --seed N --count K --out FILE.jsonl

Each line: {"schema": <.cedarschema text>, "policies": <policy text>, "valid": bool, "kinds": [error kinds]}.
Schemas have entity types with required and optional attributes of every type (records, sets, entity references,
the four extension types), tags, an enumerated type, entity hierarchies, actions in groups with contexts, and
sometimes a namespace. Policies are built from expression templates that are valid, invalid in one way (a wrong type,
an unguarded optional attribute or tag, an unknown attribute, entity type or action, an empty set, a bad or
non-literal extension argument, incompatible branches or operands), or guarded, joined with && || ! and if-then-else.
The error kinds are read from cedarpy's messages (the same names the Swift validator uses).
"""
import argparse
import json
import random
import sys

import cedarpy

KINDS = [
    ("unrecognized entity type", "unrecognized_entity_type"),
    ("unrecognized action", "unrecognized_action"),
    ("unable to find an applicable action", "invalid_action_application"),
    ("unexpected type", "unexpected_type"),
    ("are not compatible", "incompatible_types"),
    ("safety of access to optional attribute", "unsafe_optional_attribute_access"),
    ("safety of access to tag", "unsafe_tag_access"),
    ("not found", "unsafe_attribute_access"),
    ("is not allowed on entities", "no_tags_allowed"),
    ("empty set literals", "empty_set"),
    ("wrong number of arguments", "wrong_number_arguments"),
    ("argument validation", "extension_argument"),
    ("non-literal expressions", "non_literal_extension_constructor"),
    ("enum", "invalid_enum_entity"),
]


def kind(message: str) -> str:
    for needle, k in KINDS:
        if needle in message:
            return k
    return "other: " + message[:80]


ATTR_TYPES = [
    ("Long", "1"), ("String", '"s"'), ("Bool", "true"), ("ipaddr", 'ip("10.0.0.1")'),
    ("decimal", 'decimal("1.5")'), ("datetime", 'datetime("2024-10-15")'), ("duration", 'duration("1h")'),
    ("Set<String>", '["a"]'), ("Set<Long>", "[1, 2]"), ("{ x: Long, y?: String }", None),
]


def gen_schema(rng: random.Random):
    names = rng.sample(["User", "Group", "Doc", "Folder", "Team", "Device"], rng.randint(3, 5))
    types = {}
    lines = []
    for i, n in enumerate(names):
        attrs = {}
        for a in rng.sample(["n", "s", "b", "addr", "price", "when", "ttl", "labels", "nums", "meta", "owner"],
                            rng.randint(0, 5)):
            if a == "owner":
                t = rng.choice(names)
            else:
                t = rng.choice(ATTR_TYPES)[0]
            attrs[a] = (t, rng.random() < 0.3)
        parents = rng.sample(names[:i], rng.randint(0, min(2, i))) if i else []
        tags = rng.choice([None, None, "String", "Long"])
        types[n] = {"attrs": attrs, "parents": parents, "tags": tags}
        body = ", ".join(f"{a}{'?' if opt else ''}: {t}" for a, (t, opt) in attrs.items())
        decl = f"entity {n}"
        if parents:
            decl += " in [" + ", ".join(parents) + "]"
        decl += " = { " + body + " }" if attrs else ""
        if tags:
            decl += f" tags {tags}"
        lines.append(decl + ";")
    lines.append('entity Color enum ["red", "green"];')
    actions = {}
    lines.append("action grp;")
    for a in ["view", "edit", "share"]:
        ps = rng.sample(names, rng.randint(1, 2))
        rs = rng.sample(names + ["Color"], rng.randint(1, 2))
        ctx = {"c": ("Long", False), "flag": ("Bool", True), "ip": ("ipaddr", rng.random() < 0.5)}
        actions[a] = {"principals": ps, "resources": rs, "context": ctx}
        in_grp = " in [grp]" if rng.random() < 0.6 else ""
        cbody = ", ".join(f"{k}{'?' if o else ''}: {t}" for k, (t, o) in ctx.items())
        lines.append(f"action {a}{in_grp} appliesTo {{ principal: [{', '.join(ps)}], resource: [{', '.join(rs)}], "
                     f"context: {{ {cbody} }} }};")
    text = "\n".join(lines)
    ns = None
    if rng.random() < 0.2:
        ns = "App"
        text = "namespace App {\n" + text + "\n}"
    return text, types, actions, ns


def literal_of(t: str, rng: random.Random) -> str:
    for name, lit in ATTR_TYPES:
        if name == t and lit:
            return lit
    if t.startswith("{"):
        return '{ x: 1, y: "a" }'
    return f'{t}::"x"'


def gen_expr(rng: random.Random, types, actions, ns, depth=0) -> str:
    q = (lambda n: f"{ns}::{n}") if ns else (lambda n: n)
    names = list(types)
    n = rng.choice(names)
    info = types[n]
    attrs = list(info["attrs"].items())
    var = rng.choice(["principal", "resource"])

    def attr_expr():
        if not attrs:
            return f'{var}.nope == 1'
        a, (t, opt) = rng.choice(attrs)
        guard = rng.random() < 0.6
        use = f"{var}.{a} == {literal_of(t, rng)}" if not t.startswith("{") else f"{var}.{a}.x == 1"
        if t in ("Long",):
            use = rng.choice([f"{var}.{a} > 2", f"{var}.{a} + 1 == 3", f'{var}.{a} == "x"'])
        if t == "datetime":
            use = rng.choice([f'{var}.{a} < datetime("2025-01-01")', f'{var}.{a}.offset(duration("1d")) > {var}.{a}'])
        if t == "decimal":
            use = rng.choice([f'{var}.{a}.lessThan(decimal("3.0"))', f'{var}.{a} < decimal("3.0")'])
        if t == "ipaddr":
            use = rng.choice([f'{var}.{a}.isInRange(ip("10.0.0.0/8"))', f"{var}.{a}.isIpv4()"])
        if t.startswith("Set"):
            use = rng.choice([f'{var}.{a}.contains({"1" if "Long" in t else chr(34) + "a" + chr(34)})',
                              f"{var}.{a}.containsAny([1])", f"{var}.{a}.isEmpty()"])
        if t in names or t.startswith(ns or "\0"):
            use = rng.choice([f"{var}.{a} == principal", f"{var}.{a} in resource", f'{var}.{a}.nope == 1'])
        return f"({var} is {q(n)} && {var} has {a} && {use})" if guard else f"({var} is {q(n)} && {use})"

    templates = [
        attr_expr,
        lambda: "context.c < 10",
        lambda: "context.flag",
        lambda: "context has flag && context.flag",
        lambda: "context.ip.isLoopback()",
        lambda: "context has ip && context.ip.isLoopback()",
        lambda: f'principal in {q(rng.choice(names))}::"g"',
        lambda: f"resource is {q(rng.choice(names + ['Color', 'Nope']))}",
        lambda: f'{q("Color")}::"{rng.choice(["red", "blue"])}" == resource',
        lambda: f'action == {q("Action")}::"{rng.choice(["view", "edit", "nope"])}"',
        lambda: f'action in [{q("Action")}::"grp"]',
        lambda: f'ip("{rng.choice(["10.0.0.1", "300.1.1.1", "::1", "x"])}").isIpv4()',
        lambda: f'decimal("{rng.choice(["1.25", "1.23456", "x"])}").greaterThan(decimal("1.0"))',
        lambda: f'datetime("{rng.choice(["2024-10-15", "2024-13-01"])}") < datetime("2025-01-01")',
        lambda: 'duration("1h") > duration("30m")',
        lambda: 'decimal("1.0") < decimal("2.0")',
        lambda: "ip(context.ip) == context.ip",
        lambda: "[].isEmpty()",
        lambda: '[1, "a"].contains(1)',
        lambda: '[1, 2].contains("a")',
        lambda: "[1, 2].containsAll([1])",
        lambda: "(if context.c > 0 then 1 else 2) == 1",
        lambda: '(if context.c > 0 then 1 else "x") == 1',
        lambda: "(if true then 1 else \"x\") == 1",
        lambda: 'principal == "x"',
        lambda: "principal == resource",
        lambda: "1 == \"a\"",
        lambda: f'{q(rng.choice(names))}::"a" in [{q(rng.choice(names))}::"b"]',
        lambda: f'Nope::"x" == principal',
        lambda: f'resource.hasTag("k") && resource.getTag("k") == {rng.choice(["1", chr(34) + "v" + chr(34)])}',
        lambda: 'resource.getTag("k") == "v"',
        lambda: "1 + true == 2",
        lambda: "!context.flag",
        lambda: '{ a: 1 }.a == 1',
        lambda: '"abc" like "a*"',
        lambda: "principal.isIpv4()",
    ]
    e = rng.choice(templates)()
    if depth < 2 and rng.random() < 0.45:
        other = gen_expr(rng, types, actions, ns, depth + 1)
        e = rng.choice([f"({e}) && ({other})", f"({e}) || ({other})", f"!({e}) && ({other})",
                        f"if ({e}) then ({other}) else false"])
    return e


def gen_policy(rng: random.Random, types, actions, ns) -> str:
    q = (lambda n: f"{ns}::{n}") if ns else (lambda n: n)
    names = list(types)
    principal = rng.choice(["principal"] * 4 + [f"principal is {q(rng.choice(names))}",
                            f'principal in {q(rng.choice(names))}::"g"', f'principal == {q(rng.choice(names))}::"u"'])
    action = rng.choice(["action"] * 3 + [f'action == {q("Action")}::"{rng.choice(["view", "edit", "share"])}"'] * 3
                        + [f'action in [{q("Action")}::"grp"]', f'action == {q("Action")}::"nope"'])
    resource = rng.choice(["resource"] * 4 + [f"resource is {q(rng.choice(names + ['Color']))}"])
    body = gen_expr(rng, types, actions, ns)
    clause = rng.choice(["when", "unless"])
    return f"{rng.choice(['permit', 'forbid'])} ({principal}, {action}, {resource}) {clause} {{ {body} }};"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    written = 0
    with open(args.out, "w") as out:
        while written < args.count:
            schema, types, actions, ns = gen_schema(rng)
            policies = "\n".join(gen_policy(rng, types, actions, ns) for _ in range(rng.choice([1, 1, 1, 2])))
            try:
                result = cedarpy.validate_policies(policies, schema)
            except Exception:  # noqa: BLE001 - a schema or policy cedarpy cannot parse is not a case
                continue
            errors = [str(e) for e in (result.errors or [])]
            if any(("parse" in m.lower() and "argument validation" not in m) or "schema" in m.lower()
                   for m in errors):
                continue
            out.write(json.dumps({"schema": schema, "policies": policies, "valid": bool(result.validation_passed),
                                  "kinds": sorted({kind(m) for m in errors}), "messages": errors[:5]}) + "\n")
            written += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
