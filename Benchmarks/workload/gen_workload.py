#!/usr/bin/env python3
"""Generate a deterministic Cedar authorization workload modelled on Warden.

Usage:
    python3 Benchmarks/workload/gen_workload.py --out DIR [--seed 7] [--requests 2000]

Writes into DIR:
    entities.json            Cedar entities JSON (a list of {"uid","attrs","parents"})
    policies-10.cedar        the core policies of a small deployment
    policies-100.cedar       ... plus per-agent / per-tool / per-role policies,
    policies-1000.cedar      each larger set covering more agents, tools, services
    policies-10000.cedar     (every set is a prefix of the next: deployments grow)
    requests.jsonl           one request per line: {"principal","action","resource","context"}
    manifest.json            counts and the generator's parameters

Only the Python standard library is used, and the output depends on nothing but
--seed and --requests (no set iteration, no hash order, no clock), so the same
command always writes byte-identical files.

Every policy carries an @id("...") annotation. Cedar engines name the parsed
policies policy0, policy1, ... in file order; the annotation gives a stable name
that survives reordering.
"""

import argparse
import hashlib
import json
import math
import os
import random

SIZES = [10, 100, 1000, 10000]
AGENT_PREFIX = "spiffe://warden.local/agent/"

DOMAINS = ["payments", "billing", "identity", "search", "analytics", "support",
           "inventory", "shipping", "marketing", "fleet", "security", "ml"]
ZONES = ["prod", "staging", "dev", "shared", "ops", "restricted"]
DEPARTMENTS = {
    "eng": ["backend", "frontend", "mobile", "api", "devex"],
    "data": ["warehouse", "ml-research", "bi", "pipelines", "governance"],
    "finance": ["ap", "ar", "treasury", "payroll", "fpna"],
    "support": ["tier1", "tier2", "escalations", "community", "success"],
    "security": ["appsec", "secops", "iam", "grc", "redteam"],
    "ops": ["sre", "netops", "release", "dba", "capacity"],
}
GLOBAL_ROLES = ["platform-reader", "mcp-basic", "service-caller", "tool-operator",
                "on-call", "auditor", "deployer", "data-steward", "incident-responder",
                "release-manager", "secrets-reader", "billing-observer"]
GLOBAL_ROLE_PARENTS = {"incident-responder": "on-call", "deployer": "service-caller",
                       "tool-operator": "mcp-basic", "release-manager": "deployer"}
APIS = ["ledger", "refunds", "invoices", "accounts", "sessions", "tokens", "catalog",
        "orders", "reports", "events", "search", "profiles", "exports", "webhooks",
        "quotes", "alerts", "users", "metrics", "jobs", "files"]
SERVER_BASES = ["github", "gitlab", "jira", "confluence", "slack", "pagerduty", "datadog",
                "postgres", "mysql", "snowflake", "s3", "gcs", "stripe", "salesforce",
                "zendesk", "kubernetes", "terraform", "vault", "okta", "sentry"]
SERVER_VARIANTS = ["", "-eu", "-internal"]
SERVER_DATA = {"postgres": "pii", "mysql": "pii", "snowflake": "pii", "salesforce": "pii",
               "zendesk": "pii", "stripe": "pci", "vault": "secret", "okta": "secret",
               "github": "internal", "gitlab": "internal", "jira": "internal",
               "confluence": "internal", "slack": "internal", "pagerduty": "internal",
               "datadog": "internal", "s3": "confidential", "gcs": "confidential",
               "kubernetes": "internal", "terraform": "confidential", "sentry": "internal"}
# verb -> (base risk, data class override or None)
VERBS = {"list": (1, "public"), "get": (2, None), "search": (2, "public"), "query": (4, None),
         "create": (4, None), "update": (5, None), "comment": (3, "public"), "export": (7, None),
         "delete": (8, None), "deploy": (9, None), "grant": (9, None), "rotate": (8, None),
         "merge": (6, None), "archive": (5, None), "run": (7, None)}
NOUNS = ["issue", "record", "secret", "table", "bucket", "pipeline", "ticket", "page",
         "user", "job", "release", "dashboard", "alert", "branch", "invoice"]
MODELS = ["claude-sonnet-4", "claude-haiku-4", "claude-opus-4", "gpt-4.1", "gpt-4o-mini",
          "llama-3.1-70b", "mistral-large", "gemini-2.5-pro"]
AGENT_KINDS = ["triage", "coder", "analyst", "reviewer", "support", "ops", "researcher",
               "planner"]
TAGS = ["reader", "docs", "batch", "interactive", "customer-facing", "internal",
        "pci-cleared", "pii-cleared", "experimental"]
FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
         "yuki", "zoe", "omar", "priya", "li", "sven"]
LAST = ["nguyen", "smith", "garcia", "kim", "mueller", "rossi", "tanaka", "okafor", "silva",
        "novak", "dubois", "haddad", "jensen", "kowalski", "moreau"]

N_AGENTS = 1200
N_USERS = 300
N_SERVICES = 400
SEGMENTS_PER_ZONE = 6
TOOLS_PER_SERVER = 15


def q(s):
    """A Cedar string literal (our ids are printable ASCII)."""
    assert all(32 <= ord(c) < 127 for c in s), s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def e(t, i):
    return f"{t}::{q(i)}"


def uid(t, i):
    return {"type": t, "id": i}


def eref(t, i):
    return {"__entity": {"type": t, "id": i}}


class World:
    """The entity graph plus the indexes the policy and request generators use."""

    def __init__(self, rng):
        self.rng = rng
        self.entities = []
        self._build()

    def add(self, t, i, attrs=None, parents=()):
        self.entities.append({"uid": uid(t, i), "attrs": attrs or {},
                              "parents": [uid(pt, pi) for pt, pi in parents]})

    def _build(self):
        rng = self.rng
        # Actions: groups, then the concrete actions Warden issues.
        self.add("Action", "read")
        self.add("Action", "write")
        self.add("Action", "call", parents=[("Action", "write")])
        self.add("Action", "mcp:tools/call", parents=[("Action", "write")])
        self.add("Action", "mcp:tools/list", parents=[("Action", "read")])
        self.add("Action", "mcp:resources/read", parents=[("Action", "read")])

        # Segments: zones, each with sub-segments named zone/domain.
        self.segments = []          # sub-segment ids
        self.seg_domain = {}
        for zi, z in enumerate(ZONES):
            self.add("Segment", z, {"zone": z, "level": 0})
            for k in range(SEGMENTS_PER_ZONE):
                d = DOMAINS[(zi * 2 + k) % len(DOMAINS)]
                sid = f"{z}/{d}"
                self.add("Segment", sid, {"zone": z, "level": 1}, [("Segment", z)])
                self.segments.append(sid)
                self.seg_domain[sid] = d
        self.segs_by_domain = {d: [s for s in self.segments if self.seg_domain[s] == d]
                               for d in DOMAINS}

        # Teams: departments with five teams each.
        self.teams = []
        self.team_dept = {}
        for dept, teams in DEPARTMENTS.items():
            self.add("Team", dept, {"kind": "department"})
            for t in teams:
                self.add("Team", t, {"kind": "team", "department": dept}, [("Team", dept)])
                self.teams.append(t)
                self.team_dept[t] = dept
        self.team_subnet = {t: 10 + i for i, t in enumerate(self.teams)}

        # Roles: global roles and reader < writer < admin per domain.
        self.roles = list(GLOBAL_ROLES)
        for r in GLOBAL_ROLES:
            p = GLOBAL_ROLE_PARENTS.get(r)
            self.add("Role", r, {"scope": "global"}, [("Role", p)] if p else [])
        for d in DOMAINS:
            self.add("Role", f"{d}-reader", {"scope": d})
            self.add("Role", f"{d}-writer", {"scope": d}, [("Role", f"{d}-reader")])
            self.add("Role", f"{d}-admin", {"scope": d}, [("Role", f"{d}-writer")])
            self.roles += [f"{d}-reader", f"{d}-writer", f"{d}-admin"]

        # Users (the humans that own and delegate to agents).
        self.users = []
        self.user_team = {}
        seen = set()
        while len(self.users) < N_USERS:
            n = f"{rng.choice(FIRST)}.{rng.choice(LAST)}"
            if n in seen:
                n = f"{n}{len(self.users)}"
            seen.add(n)
            team = rng.choice(self.teams)
            self.add("User", n, {"email": f"{n}@corp.example", "department": self.team_dept[team],
                                 "clearance": rng.randint(1, 5)}, [("Team", team)])
            self.users.append(n)
            self.user_team[n] = team
        self.users_by_team = {t: [u for u in self.users if self.user_team[u] == t]
                              for t in self.teams}

        # Services (HTTP routes behind the gateway), each in one sub-segment.
        self.services = []
        self.svc_domain, self.svc_seg, self.svc_api, self.svc_version = {}, {}, {}, {}
        seen = set()
        while len(self.services) < N_SERVICES:
            d = rng.choice(DOMAINS)
            api = rng.choice(APIS)
            v = rng.randint(1, 3)
            sid = f"{d}/{api}-v{v}"
            if sid in seen:
                sid = f"{d}/{api}-v{v}-{len(self.services)}"
            seen.add(sid)
            seg = rng.choice(self.segs_by_domain[d] or self.segments)
            dc = rng.choice(["public", "internal", "internal", "confidential", "pii", "pci"])
            self.add("Service", sid, {"dataClass": dc, "tier": rng.randint(1, 3),
                                      "owner": eref("Team", rng.choice(self.teams))},
                     [("Segment", seg)])
            self.services.append(sid)
            self.svc_domain[sid], self.svc_seg[sid] = d, seg
            self.svc_api[sid], self.svc_version[sid] = api, v
        self.svcs_by_domain = {d: [s for s in self.services if self.svc_domain[s] == d]
                               for d in DOMAINS}
        self.svcs_by_seg = {g: [s for s in self.services if self.svc_seg[s] == g]
                            for g in self.segments}

        # MCP tool servers and their tools.
        self.servers = []
        self.server_seg, self.server_base = {}, {}
        self.tools = []
        self.tool_server, self.tool_risk, self.tool_dc = {}, {}, {}
        for var in SERVER_VARIANTS:
            for base in SERVER_BASES:
                srv = base + var
                zone = "prod" if var == "" else ("shared" if var == "-eu" else "ops")
                seg = rng.choice([s for s in self.segments if s.startswith(zone + "/")])
                self.add("ToolServer", srv, {"vendor": base, "dataClass": SERVER_DATA[base],
                                             "transport": rng.choice(["stdio", "http", "sse"])},
                         [("Segment", seg)])
                self.servers.append(srv)
                self.server_seg[srv], self.server_base[srv] = seg, base
                verbs = rng.sample(sorted(VERBS), TOOLS_PER_SERVER)
                for vb in verbs:
                    tid = f"{srv}/{vb}_{rng.choice(NOUNS)}"
                    if tid in self.tool_server:
                        tid = f"{tid}2"
                    base_risk, dc = VERBS[vb]
                    risk = max(0, min(10, base_risk + rng.choice([-1, 0, 0, 0, 1])))
                    dc = dc or SERVER_DATA[base]
                    self.add("Tool", tid, {"risk": risk, "dataClass": dc}, [("ToolServer", srv)])
                    self.tools.append(tid)
                    self.tool_server[tid], self.tool_risk[tid], self.tool_dc[tid] = srv, risk, dc
        self.tools_by_server = {s: [t for t in self.tools if self.tool_server[t] == s]
                                for s in self.servers}
        self.servers_by_seg = {g: [s for s in self.servers if self.server_seg[s] == g]
                               for g in self.segments}
        self.high_risk_tools = [t for t in self.tools if self.tool_risk[t] >= 7]

        # Agents: the principals Warden authenticates by SPIFFE id.
        self.agents = []
        self.agent = {}
        for i in range(N_AGENTS):
            d = rng.choice(DOMAINS)
            name = f"{d}-{rng.choice(AGENT_KINDS)}-{i:04d}"
            aid = AGENT_PREFIX + name
            team = rng.choice(self.teams)
            owner = rng.choice(self.users_by_team[team] or self.users)
            env = rng.choices(["prod", "staging", "dev"], [5, 3, 2])[0]
            roles = [f"{d}-" + rng.choices(["reader", "writer", "admin"], [5, 4, 1])[0]]
            if rng.random() < 0.6:
                roles.append("mcp-basic")
            if rng.random() < 0.5:
                roles.append(rng.choice(GLOBAL_ROLES))
            if rng.random() < 0.2:
                roles.append(f"{rng.choice(DOMAINS)}-reader")
            roles = sorted(dict.fromkeys(roles))
            attrs = {"name": name, "owner": eref("User", owner), "model": rng.choice(MODELS),
                     "environment": env}
            legacy = rng.random() < 0.03   # registered before manifests and tags existed
            digest = "sha256:" + hashlib.sha256(f"{name}:{i}".encode()).hexdigest()
            tags = []
            if not legacy:
                attrs["manifestDigest"] = digest
                tags = sorted(rng.sample(TAGS, rng.randint(0, 3)))
                if rng.random() < 0.01:
                    tags.append("quarantined")
                attrs["tags"] = tags
            self.add("Agent", aid, attrs,
                     [("Role", r) for r in roles] + [("Team", team)])
            self.agents.append(aid)
            self.agent[aid] = {"name": name, "domain": d, "team": team, "owner": owner,
                               "env": env, "roles": roles, "digest": digest,
                               "legacy": legacy, "tags": tags, "model": attrs["model"]}
        self.agents_by_role = {}
        for a in self.agents:
            for r in self.agent[a]["roles"]:
                self.agents_by_role.setdefault(r, []).append(a)
        self.agents_by_team = {t: [a for a in self.agents if self.agent[a]["team"] == t]
                               for t in self.teams}
        self.agents_by_domain = {d: [a for a in self.agents if self.agent[a]["domain"] == d]
                                 for d in DOMAINS}

    # ---- helpers for the generators ------------------------------------------------
    def seg_of(self, rtype, rid):
        if rtype == "Service":
            return self.svc_seg[rid]
        if rtype == "ToolServer":
            return self.server_seg[rid]
        if rtype == "Tool":
            return self.server_seg[self.tool_server[rid]]
        return None

    def resource_in_seg(self, rng, seg, action):
        """A resource under segment `seg` that fits `action`, or None."""
        if action == "call":
            c = self.svcs_by_seg.get(seg) or []
            return ("Service", rng.choice(c)) if c else None
        srvs = self.servers_by_seg.get(seg) or []
        if not srvs:
            return None
        srv = rng.choice(srvs)
        if action == "mcp:tools/call":
            return ("Tool", rng.choice(self.tools_by_server[srv]))
        return ("ToolServer", srv)

    def resource_for(self, rng, seg, action):
        """Like resource_in_seg, falling back to any resource that fits `action`."""
        r = self.resource_in_seg(rng, seg, action)
        if r:
            return r
        if action == "call":
            return ("Service", rng.choice(self.services))
        if action == "mcp:tools/call":
            return ("Tool", rng.choice(self.tools))
        return ("ToolServer", rng.choice(self.servers))

    def agent_in(self, rng, members):
        return rng.choice(members) if members else rng.choice(self.agents)


# ---- policies --------------------------------------------------------------------------

def scenario(p, a, r, ctx=None, breaks=None):
    """How to build a request that the policy is about: principal, action, resource, the
    context entries that satisfy its condition, and changes that would falsify it."""
    return {"p": p, "a": a, "r": r, "ctx": ctx or {}, "breaks": breaks or []}


def core_policies(w):
    """The ten policies of a minimal deployment: they are policies-10.cedar."""
    out = []
    out.append(("core-platform-read-shared", """permit (
  principal in Role::"platform-reader",
  action in Action::"read",
  resource in Segment::"shared"
);""", "core-read"))
    out.append(("core-mcp-list", """permit (
  principal is Agent in Role::"mcp-basic",
  action == Action::"mcp:tools/list",
  resource is ToolServer
);""", "core-list"))
    out.append(("core-low-risk-public-tools", """permit (
  principal is Agent,
  action == Action::"mcp:tools/call",
  resource is Tool
)
when { resource.risk <= 3 && resource.dataClass == "public" && principal.environment != "dev" };""",
                "core-lowrisk"))
    out.append(("core-high-risk-needs-trust-or-approval", """forbid (
  principal,
  action == Action::"mcp:tools/call",
  resource is Tool
)
when { resource.risk >= 8 }
unless
{
  (context has trust && context.trust >= 70) ||
  (context has approval && context.approval.approved == true)
};""", "core-highrisk"))
    out.append(("core-prod-only-prod-agents", """forbid (
  principal is Agent,
  action,
  resource in Segment::"prod"
)
unless { principal.environment == "prod" };""", None))
    out.append(("core-writes-from-private-networks", """forbid (
  principal,
  action in Action::"write",
  resource
)
unless
{
  context has source &&
  (ip(context.source).isInRange(ip("10.0.0.0/8")) ||
   ip(context.source).isInRange(ip("192.168.0.0/16")) ||
   ip(context.source).isLoopback())
};""", None))
    out.append(("core-pci-needs-clearance", """forbid (
  principal is Agent,
  action == Action::"mcp:tools/call",
  resource
)
when { resource has dataClass && resource.dataClass == "pci" }
unless { principal.tags.contains("pci-cleared") };""", None))
    out.append(("core-sre-ops-business-hours", """permit (
  principal in Team::"sre",
  action == Action::"call",
  resource in Segment::"ops"
)
when { context has hour && context.hour >= 8 && context.hour < 20 };""", "core-sre"))
    out.append(("core-public-docs", """permit (
  principal,
  action == Action::"mcp:resources/read",
  resource is ToolServer
)
when { context has uri && context.uri like "docs://public/*" };""", "core-docs"))
    out.append(("core-quarantine", """forbid (
  principal is Agent,
  action,
  resource
)
when { principal.tags.contains("quarantined") };""", None))
    return out


def core_scenario(w, rng, kind):
    if kind == "core-read":
        a = w.agent_in(rng, w.agents_by_role.get("platform-reader"))
        seg = rng.choice([s for s in w.segments if s.startswith("shared/")])
        act = rng.choice(["mcp:tools/list", "mcp:resources/read"])
        r = w.resource_for(rng, seg, act)
        return scenario(("Agent", a), act, r)
    if kind == "core-list":
        a = w.agent_in(rng, w.agents_by_role.get("mcp-basic"))
        return scenario(("Agent", a), "mcp:tools/list", ("ToolServer", rng.choice(w.servers)))
    if kind == "core-lowrisk":
        t = rng.choice([t for t in w.tools if w.tool_risk[t] <= 3 and w.tool_dc[t] == "public"])
        return scenario(("Agent", rng.choice(w.agents)), "mcp:tools/call", ("Tool", t))
    if kind == "core-highrisk":
        t = rng.choice([t for t in w.tools if w.tool_risk[t] >= 8])
        return scenario(("Agent", rng.choice(w.agents)), "mcp:tools/call", ("Tool", t),
                        {"trust": rng.randint(70, 100)}, [{"trust": rng.randint(10, 69)}])
    if kind == "core-sre":
        a = w.agent_in(rng, w.agents_by_team["sre"])
        seg = rng.choice([s for s in w.segments if s.startswith("ops/")])
        r = w.resource_for(rng, seg, "call")
        return scenario(("Agent", a), "call", r, {"hour": rng.randint(8, 19)},
                        [{"hour": rng.choice([2, 5, 21, 23])}])
    if kind == "core-docs":
        return scenario(("Agent", rng.choice(w.agents)), "mcp:resources/read",
                        ("ToolServer", rng.choice(w.servers)),
                        {"uri": f"docs://public/{rng.choice(DOMAINS)}/guide.md"},
                        [{"uri": "docs://internal/runbooks/db.md"}])
    raise ValueError(kind)


class Families:
    """Policy families of a growing deployment. Instance k of a family names the k-th agent,
    tool, service, role or team in a fixed shuffled order, so a bigger policy set covers
    more of the entity graph instead of repeating one policy."""

    # weights per cycle of 20 policies
    SCHEDULE = (["agent_svc"] * 4 + ["agent_tool"] * 4 + ["role"] * 2 + ["deleg"] * 2 +
                ["team", "revoke", "hirisk", "env", "ip", "path", "res", "manifest"])

    def __init__(self, w, rng):
        self.w = w
        self.rng = rng
        self.count = {}
        self.agent_order = list(w.agents)
        rng.shuffle(self.agent_order)
        self.svc_order = list(w.services)
        rng.shuffle(self.svc_order)
        self.hr_order = list(w.high_risk_tools)
        rng.shuffle(self.hr_order)
        self.role_combos = [(r, g) for r in w.roles for g in w.segments]
        rng.shuffle(self.role_combos)
        self.team_combos = [(t, g) for t in w.teams for g in w.segments]
        rng.shuffle(self.team_combos)

    def next(self, fam):
        k = self.count.get(fam, 0)
        self.count[fam] = k + 1
        pid, text, scen = getattr(self, "f_" + fam)(k)
        return f"{fam}-{k:05d}-{pid}", text, scen

    def _agent(self, k, salt=0):
        return self.agent_order[(k * 7 + salt) % len(self.agent_order)]

    def _svc_for(self, rng, a):
        d = self.w.agent[a]["domain"]
        return rng.choice(self.w.svcs_by_domain[d] or self.w.services)

    def _path(self, s, tail):
        return f"/v{self.w.svc_version[s]}/{self.w.svc_api[s]}/{tail}"

    # -- per-agent service permits
    def f_agent_svc(self, k):
        w, rng = self.w, self.rng
        a = self._agent(k)
        s = self._svc_for(rng, a)
        head = f"""permit (
  principal == {e("Agent", a)},
  action == Action::"call",
  resource == {e("Service", s)}
)"""
        v = k % 4
        if v == 0:
            return "svc", head + ";", scenario(("Agent", a), "call", ("Service", s))
        if v == 1:
            return "svc-readonly", head + """
when { context has method && ["GET", "HEAD"].contains(context.method) };""", scenario(
                ("Agent", a), "call", ("Service", s), {"method": "GET"}, [{"method": "POST"}])
        if v == 2:
            pat = f"/v{w.svc_version[s]}/{w.svc_api[s]}/*"
            return "svc-path", head + f"""
when {{ context has path && context.path like {q(pat)} }};""", scenario(
                ("Agent", a), "call", ("Service", s), {"path": self._path(s, f"items/{k}")},
                [{"path": f"/internal/{w.svc_api[s]}/debug"}])
        return "svc-hours", head + """
when { context.hour >= 6 && context.hour <= 22 && context.trust >= 40 };""", scenario(
            ("Agent", a), "call", ("Service", s), {"hour": rng.randint(6, 22),
                                                   "trust": rng.randint(40, 100)},
            [{"hour": rng.choice([0, 3, 23])}, {"trust": rng.randint(0, 39)}])

    # -- per-agent tool permits
    def f_agent_tool(self, k):
        w, rng = self.w, self.rng
        a = self._agent(k, 3)
        srv = rng.choice(w.servers)
        t = rng.choice(w.tools_by_server[srv])
        v = k % 4
        if v == 2:
            return "toolserver", f"""permit (
  principal == {e("Agent", a)},
  action in [Action::"mcp:tools/call", Action::"mcp:tools/list"],
  resource in {e("ToolServer", srv)}
);""", scenario(("Agent", a), "mcp:tools/call", ("Tool", t))
        head = f"""permit (
  principal == {e("Agent", a)},
  action == Action::"mcp:tools/call",
  resource == {e("Tool", t)}
)"""
        if v == 0:
            return "tool", head + ";", scenario(("Agent", a), "mcp:tools/call", ("Tool", t))
        if v == 1:
            return "tool-trust", head + """
when { context has trust && context.trust >= 50 };""", scenario(
                ("Agent", a), "mcp:tools/call", ("Tool", t), {"trust": rng.randint(50, 100)},
                [{"trust": rng.randint(0, 49)}])
        return "tool-args", head + """
when
{
  context has arguments &&
  context.arguments has target &&
  context.arguments.target like "acme-*"
};""", scenario(("Agent", a), "mcp:tools/call", ("Tool", t),
                {"arguments": {"target": f"acme-{w.agent[a]['domain']}-{k}", "dryRun": False}},
                [{"arguments": {"target": f"external-{k}", "dryRun": False}}, {"arguments": {}}])

    # -- role-level permits over segments and tool servers
    def f_role(self, k):
        w, rng = self.w, self.rng
        r, g = self.role_combos[k % len(self.role_combos)]
        a = w.agent_in(rng, w.agents_by_role.get(r))
        v = k % 4
        if v == 0:
            act = rng.choice(["mcp:tools/list", "mcp:resources/read"])
            res = w.resource_for(rng, g, act)
            return "read-seg", f"""permit (
  principal in {e("Role", r)},
  action in Action::"read",
  resource in {e("Segment", g)}
);""", scenario(("Agent", a), act, res)
        if v == 1:
            res = w.resource_for(rng, g, "call")
            return "call-seg", f"""permit (
  principal in {e("Role", r)},
  action == Action::"call",
  resource in {e("Segment", g)}
)
when {{ context.trust >= 60 }};""", scenario(("Agent", a), "call", res,
                                            {"trust": rng.randint(60, 100)},
                                            [{"trust": rng.randint(0, 59)}])
        if v == 2:
            srv = rng.choice(w.servers_by_seg.get(g) or w.servers)
            t = rng.choice(w.tools_by_server[srv])
            return "tools-server", f"""permit (
  principal in {e("Role", r)},
  action == Action::"mcp:tools/call",
  resource in {e("ToolServer", srv)}
)
when {{ resource.risk <= 6 }};""", scenario(("Agent", a), "mcp:tools/call", ("Tool", t))
        act = rng.choice(["call", "mcp:tools/call"])
        res = w.resource_for(rng, g, act)
        return "write-seg-hours", f"""permit (
  principal in {e("Role", r)},
  action in Action::"write",
  resource in {e("Segment", g)}
)
when {{ principal.environment == "prod" && context.hour >= 7 && context.hour < 19 }};""", scenario(
            ("Agent", a), act, res, {"hour": rng.randint(7, 18)},
            [{"hour": rng.choice([1, 4, 19, 22])}])

    # -- team-level permits
    def f_team(self, k):
        w, rng = self.w, self.rng
        t, g = self.team_combos[k % len(self.team_combos)]
        a = w.agent_in(rng, w.agents_by_team[t])
        v = k % 3
        if v == 0:
            res = w.resource_for(rng, g, "call")
            return "call-internal", f"""permit (
  principal in {e("Team", t)},
  action == Action::"call",
  resource in {e("Segment", g)}
)
when {{ ip(context.source).isInRange(ip("10.0.0.0/8")) }};""", scenario(
                ("Agent", a), "call", res, {}, [{"source": "203.0.113.77"}])
        if v == 1:
            res = w.resource_for(rng, g, "mcp:tools/list")
            return "list-seg", f"""permit (
  principal is Agent in {e("Team", t)},
  action == Action::"mcp:tools/list",
  resource in {e("Segment", g)}
);""", scenario(("Agent", a), "mcp:tools/list", res)
        act = rng.choice(["mcp:tools/list", "mcp:resources/read"])
        res = w.resource_for(rng, g, act)
        return "read-nonsecret", f"""permit (
  principal in {e("Team", t)},
  action in Action::"read",
  resource
)
when
{{
  resource has dataClass &&
  resource.dataClass != "secret" &&
  resource in {e("Segment", g)}
}};""", scenario(("Agent", a), act, res)

    # -- forbids: per-agent revocations, change freezes, destructive calls
    def f_revoke(self, k):
        w, rng = self.w, self.rng
        v = k % 3
        if v == 0:
            a = self._agent(k, 11)
            g = rng.choice(w.segments)
            act = rng.choice(["call", "mcp:tools/call", "mcp:tools/list"])
            res = w.resource_for(rng, g, act)
            return "agent-seg", f"""forbid (
  principal == {e("Agent", a)},
  action,
  resource in {e("Segment", g)}
);""", scenario(("Agent", a), act, res)
        if v == 1:
            t = w.teams[(k // 3) % len(w.teams)]
            z = ZONES[(k // 3) % len(ZONES)]
            a = w.agent_in(rng, w.agents_by_team[t])
            g = rng.choice([s for s in w.segments if s.startswith(z + "/")])
            res = w.resource_for(rng, g, "call")
            return "freeze", f"""forbid (
  principal in {e("Team", t)},
  action in Action::"write",
  resource in {e("Segment", z)}
)
when {{ context.hour < 6 || context.hour >= 22 }};""", scenario(
                ("Agent", a), "call", res, {"hour": rng.choice([0, 2, 5, 22, 23])},
                [{"hour": 12}])
        s = self.svc_order[(k // 3) % len(self.svc_order)]
        d = w.svc_domain[s]
        a = w.agent_in(rng, w.agents_by_domain[d])
        return "no-delete", f"""forbid (
  principal,
  action == Action::"call",
  resource == {e("Service", s)}
)
when {{ context has method && context.method == "DELETE" }}
unless {{ principal in {e("Role", d + "-admin")} }};""", scenario(
            ("Agent", a), "call", ("Service", s), {"method": "DELETE"}, [{"method": "GET"}])

    # -- high-risk tools: four-eyes approval, team trust floors
    def f_hirisk(self, k):
        w, rng = self.w, self.rng
        n = len(self.hr_order)
        t = self.hr_order[k % n]
        a = rng.choice(w.agents)
        appr = rng.choice(w.users)
        if k < n:
            return "approval", f"""forbid (
  principal is Agent,
  action == Action::"mcp:tools/call",
  resource == {e("Tool", t)}
)
unless
{{
  context has approval &&
  context.approval.approved == true &&
  context.approval.approvedBy != principal.owner
}};""", scenario(("Agent", a), "mcp:tools/call", ("Tool", t),
                 {"approval": {"approved": True, "approvedBy": eref("User", appr),
                               "ticket": f"CHG-{k:05d}"}},
                 [{"approval": {"approved": False, "approvedBy": eref("User", appr),
                                "ticket": f"CHG-{k:05d}"}},
                  {"approval": {"approved": True,
                                "approvedBy": eref("User", w.agent[a]["owner"]),
                                "ticket": f"CHG-{k:05d}"}}])
        team = w.teams[(k // n) % len(w.teams)]
        a = w.agent_in(rng, w.agents_by_team[team])
        return "team-trust", f"""forbid (
  principal in {e("Team", team)},
  action == Action::"mcp:tools/call",
  resource == {e("Tool", t)}
)
unless {{ context has trust && context.trust >= 80 }};""", scenario(
            ("Agent", a), "mcp:tools/call", ("Tool", t), {"trust": rng.randint(80, 100)},
            [{"trust": rng.randint(30, 79)}])

    # -- environment and model rules per service
    def f_env(self, k):
        w, rng = self.w, self.rng
        s = self.svc_order[k % len(self.svc_order)]
        env = ["staging", "prod", "dev"][(k // len(self.svc_order)) % 3]
        fam = MODELS[k % len(MODELS)].split("-")[0]
        cands = [a for a in w.agents_by_domain[w.svc_domain[s]]
                 if w.agent[a]["env"] == env and w.agent[a]["model"].startswith(fam)]
        a = w.agent_in(rng, cands)
        return "env-model", f"""permit (
  principal is Agent,
  action == Action::"call",
  resource == {e("Service", s)}
)
when
{{
  principal has environment &&
  principal.environment == {q(env)} &&
  principal.model like {q(fam + "-*")}
}};""", scenario(("Agent", a), "call", ("Service", s))

    # -- source network ranges per role and service
    def f_ip(self, k):
        w, rng = self.w, self.rng
        s = self.svc_order[(k * 3) % len(self.svc_order)]
        d = w.svc_domain[s]
        r = f"{d}-{['reader', 'writer', 'admin'][k % 3]}"
        a = w.agent_in(rng, w.agents_by_role.get(r))
        net = w.team_subnet[w.agent[a]["team"]]
        return "netrange", f"""permit (
  principal in {e("Role", r)},
  action == Action::"call",
  resource == {e("Service", s)}
)
when
{{
  ip(context.source).isInRange(ip({q(f"10.{net}.0.0/16")})) ||
  ip(context.source).isLoopback()
}};""", scenario(("Agent", a), "call", ("Service", s), {},
                 [{"source": f"10.{(net + 1) % 250}.4.4"}, {"source": "198.51.100.23"}])

    # -- delegation from the humans an agent acts for
    def f_deleg(self, k):
        w, rng = self.w, self.rng
        a = self._agent(k, 5)
        info = w.agent[a]
        owner = info["owner"]
        v = k % 3
        if v == 0:
            srv = rng.choice(w.servers)
            t = rng.choice(w.tools_by_server[srv])
            return "owner-delegated", f"""permit (
  principal == {e("Agent", a)},
  action == Action::"mcp:tools/call",
  resource in {e("ToolServer", srv)}
)
when
{{
  context has delegation &&
  context.delegation.contains(principal.owner) &&
  context.trust >= 30
}};""", scenario(("Agent", a), "mcp:tools/call", ("Tool", t),
                 {"delegation": [eref("User", owner)], "trust": rng.randint(30, 100)},
                 [{"delegation": []}, {"delegation": [eref("User", rng.choice(w.users))]}])
        if v == 1:
            u = rng.choice(w.users_by_team[info["team"]] or w.users)
            g = rng.choice(w.segs_by_domain[info["domain"]] or w.segments)
            res = w.resource_for(rng, g, "call")
            return "user-delegated", f"""permit (
  principal == {e("Agent", a)},
  action == Action::"call",
  resource in {e("Segment", g)}
)
when {{ context.delegation.contains({e("User", u)}) }};""", scenario(
                ("Agent", a), "call", res, {"delegation": [eref("User", u)]},
                [{"delegation": [eref("User", owner)]}])
        u2 = rng.choice(w.users)
        act = rng.choice(["call", "mcp:tools/call"])
        res = (("Service", self._svc_for(rng, a)) if act == "call"
               else ("Tool", rng.choice(w.tools)))
        return "writes-need-human", f"""forbid (
  principal == {e("Agent", a)},
  action in Action::"write",
  resource
)
unless
{{
  context has delegation &&
  context.delegation.containsAny([{e("User", owner)}, {e("User", u2)}])
}};""", scenario(("Agent", a), act, res, {"delegation": [eref("User", u2)]},
                 [{"delegation": []}])

    # -- path patterns per service
    def f_path(self, k):
        w, rng = self.w, self.rng
        s = self.svc_order[(k * 5 + 1) % len(self.svc_order)]
        d = w.svc_domain[s]
        if k % 2 == 0:
            t = w.teams[k % len(w.teams)]
            a = w.agent_in(rng, w.agents_by_team[t])
            pat = f"/v{w.svc_version[s]}/{w.svc_api[s]}/reports/*"
            return "reports-get", f"""permit (
  principal in {e("Team", t)},
  action == Action::"call",
  resource == {e("Service", s)}
)
when {{ context has path && context.path like {q(pat)} && context.method == "GET" }};""", scenario(
                ("Agent", a), "call", ("Service", s),
                {"path": self._path(s, f"reports/{2020 + k % 6}/q{1 + k % 4}.csv"), "method": "GET"},
                [{"method": "POST"}, {"path": self._path(s, "admin/users")}])
        a = rng.choice(w.agents_by_domain[d] or w.agents)
        return "admin-paths", f"""forbid (
  principal,
  action == Action::"call",
  resource == {e("Service", s)}
)
when {{ context has path && context.path like "*/admin/*" }}
unless {{ principal in {e("Role", d + "-admin")} }};""", scenario(
            ("Agent", a), "call", ("Service", s), {"path": self._path(s, "admin/settings")},
            [{"path": self._path(s, "items")}])

    # -- MCP resources, guarded with has
    def f_res(self, k):
        w, rng = self.w, self.rng
        a = self._agent(k, 9)
        srv = rng.choice(w.servers)
        repo = f"{w.agent[a]['domain']}-{k % 50}"
        return "resources", f"""permit (
  principal == {e("Agent", a)},
  action == Action::"mcp:resources/read",
  resource == {e("ToolServer", srv)}
)
when
{{
  context has uri &&
  context.uri like {q(f"repo://acme/{repo}/*")} &&
  principal has tags &&
  principal.tags.containsAny(["reader", "docs"])
}};""", scenario(("Agent", a), "mcp:resources/read", ("ToolServer", srv),
                 {"uri": f"repo://acme/{repo}/README.md"},
                 [{"uri": f"repo://acme/{repo}-fork/README.md"}, {"uri": "file:///etc/passwd"}])

    # -- manifest pinning: the agent must run the manifest that was approved
    def f_manifest(self, k):
        w, rng = self.w, self.rng
        a = self._agent(k, 13)
        info = w.agent[a]
        digest = info["digest"]
        if rng.random() < 0.1:     # the agent was redeployed; the pin is stale
            digest = "sha256:" + hashlib.sha256(f"stale:{a}".encode()).hexdigest()
        act = rng.choice(["call", "mcp:tools/call", "mcp:tools/list"])
        res = {"call": ("Service", self._svc_for(rng, a)),
               "mcp:tools/call": ("Tool", rng.choice(w.tools)),
               "mcp:tools/list": ("ToolServer", rng.choice(w.servers))}[act]
        return "manifest-pin", f"""forbid (
  principal == {e("Agent", a)},
  action,
  resource
)
unless {{ principal has manifestDigest && principal.manifestDigest == {q(digest)} }};""", scenario(
            ("Agent", a), act, res)


def build_policies(w, rng, total):
    fams = Families(w, rng)
    core = core_policies(w)
    policies = []   # (id, text, scenario or core-kind)
    for pid, text, kind in core:
        policies.append((pid, text, kind))
    i = 0
    while len(policies) < total:
        fam = Families.SCHEDULE[i % len(Families.SCHEDULE)]
        i += 1
        pid, text, scen = fams.next(fam)
        policies.append((pid, text, scen))
    return policies


def render(policies):
    return "\n\n".join(f'@id({q(pid)})\n{text}' for pid, text, _ in policies) + "\n"


# ---- requests --------------------------------------------------------------------------

def base_context(w, rng, principal, action):
    ctx = {}
    if principal[0] == "Agent":
        info = w.agent[principal[1]]
        net = w.team_subnet[info["team"]]
        owner = info["owner"]
    else:
        net = w.team_subnet[w.user_team[principal[1]]]
        owner = principal[1]
    x = rng.random()
    if x < 0.85:
        ctx["source"] = f"10.{net}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    elif x < 0.92:
        ctx["source"] = f"192.168.{rng.randint(0, 9)}.{rng.randint(1, 254)}"
    elif x < 0.98:
        ctx["source"] = f"203.0.113.{rng.randint(1, 254)}"
    elif x < 0.995:
        ctx["source"] = f"fd00:10:{net:x}::{rng.randint(1, 4095):x}"
    else:
        ctx["source"] = "unknown"          # a malformed peer address: ip() errors
    ctx["hour"] = rng.choices(range(24), [1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 9, 8, 9, 9, 9, 8,
                                          6, 4, 3, 2, 2, 1, 1])[0]
    if action in ("call", "mcp:tools/call") or rng.random() < 0.5:
        ctx["trust"] = max(0, min(100, int(rng.triangular(10, 100, 82))))
    if action in ("call", "mcp:tools/call"):
        dl = []
        if rng.random() < 0.6:
            dl.append(eref("User", owner))
        if rng.random() < 0.3:
            dl.append(eref("User", rng.choice(w.users)))
        ctx["delegation"] = dl
    if action == "call":
        ctx["method"] = rng.choices(["GET", "POST", "PUT", "DELETE", "PATCH"], [55, 25, 8, 7, 5])[0]
    if action == "mcp:tools/call":
        ctx["arguments"] = {"target": rng.choice(["acme-", "acme-", "external-", "tmp-"]) +
                            str(rng.randint(1, 999)), "dryRun": rng.random() < 0.2}
        if rng.random() < 0.12:
            ctx["approval"] = {"approved": rng.random() < 0.8,
                               "approvedBy": eref("User", rng.choice(w.users)),
                               "ticket": f"CHG-{rng.randint(0, 99999):05d}"}
    if action == "mcp:resources/read":
        ctx["uri"] = rng.choice([f"docs://public/{rng.choice(DOMAINS)}/index.md",
                                 f"docs://internal/{rng.choice(DOMAINS)}/runbook.md",
                                 f"repo://acme/{rng.choice(DOMAINS)}-{rng.randint(0, 49)}/src/main.py",
                                 "file:///etc/hosts", f"db://warehouse/{rng.choice(APIS)}"])
    return ctx


def service_path(w, rng, s):
    tail = rng.choice(["items", f"items/{rng.randint(1, 9999)}", "reports/2024/q1.csv",
                       "admin/users", "search?q=x", "health"])
    return f"/v{w.svc_version[s]}/{w.svc_api[s]}/{tail}"


def random_request(w, rng):
    act = rng.choices(["call", "mcp:tools/call", "mcp:tools/list", "mcp:resources/read"],
                      [40, 35, 15, 10])[0]
    if rng.random() < 0.03:
        p = ("User", rng.choice(w.users))
    else:
        p = ("Agent", rng.choice(w.agents))
    if act == "call":
        r = ("Service", rng.choice(w.services))
    elif act == "mcp:tools/call":
        r = ("Tool", rng.choice(w.tools))
    else:
        r = ("ToolServer", rng.choice(w.servers))
    return scenario(p, act, r)


def make_request(w, rng, scen, p_break):
    p, act, r = scen["p"], scen["a"], scen["r"]
    ctx = base_context(w, rng, p, act)
    if act == "call" and r[0] == "Service":
        ctx["path"] = service_path(w, rng, r[1])
    ctx.update(scen["ctx"])
    if scen["breaks"] and rng.random() < p_break:
        ctx.update(rng.choice(scen["breaks"]))
    ordered = {k: ctx[k] for k in sorted(ctx)}
    return {"principal": uid(*p), "action": uid("Action", act), "resource": uid(*r),
            "context": ordered}


def build_requests(w, rng, policies, n):
    reqs = []
    core_kinds = [k for _, _, k in policies[:10] if k]
    maxi = len(policies)
    for _ in range(n):
        x = rng.random()
        if x < 0.12:
            scen = core_scenario(w, rng, rng.choice(core_kinds))
        elif x < 0.85:
            # which policy the request is "about": log-uniform over the stream, so every
            # policy-set size sees requests aimed at policies it has and at ones it lacks
            i = min(maxi - 1, int(10 ** rng.uniform(1, math.log10(maxi))))
            scen = policies[i][2]
        else:
            scen = random_request(w, rng)
        reqs.append(make_request(w, rng, scen, 0.3))
    return reqs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    w = World(rng)
    policies = build_policies(w, random.Random(args.seed * 1000 + 1), max(SIZES))
    reqs = build_requests(w, random.Random(args.seed * 1000 + 2), policies, args.requests)

    uids = [(x["uid"]["type"], x["uid"]["id"]) for x in w.entities]
    assert len(set(uids)) == len(uids), "duplicate entity uid"
    pids = [pid for pid, _, _ in policies]
    assert len(set(pids)) == len(pids), "duplicate policy id"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "entities.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(x, separators=(",", ":")) for x in w.entities) + "\n]\n")
    for n in SIZES:
        with open(os.path.join(args.out, f"policies-{n}.cedar"), "w") as f:
            f.write(render(policies[:n]))
    with open(os.path.join(args.out, "requests.jsonl"), "w") as f:
        for r in reqs:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    types = {}
    for x in w.entities:
        types[x["uid"]["type"]] = types.get(x["uid"]["type"], 0) + 1
    fam_counts = {}
    for n in SIZES:
        c = {}
        for pid, _, _ in policies[:n]:
            fam = pid.split("-")[0]
            c[fam] = c.get(fam, 0) + 1
        fam_counts[str(n)] = dict(sorted(c.items()))
    manifest = {"generator": "gen_workload.py", "seed": args.seed, "requests": len(reqs),
                "entities": len(w.entities), "entity_types": dict(sorted(types.items())),
                "sizes": SIZES, "policy_families": fam_counts}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {len(w.entities)} entities, policy sets {SIZES}, {len(reqs)} requests to {args.out}")


if __name__ == "__main__":
    main()
