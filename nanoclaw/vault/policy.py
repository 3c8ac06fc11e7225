"""Egress policy: per agent group, which requests may leave, which wait for the owner, and how often.

`~/.config/nanoclaw/egress-policy.json` (outside every mount):

    {"default": "allow",
     "rules": [{"host": "*.internal.example", "action": "deny"}],
     "groups": {"family": {"default": "deny",
                           "rules": [{"host": "api.github.com", "method": "GET", "action": "allow",
                                      "rate": "60/hour"},
                                     {"host": "api.github.com", "action": "approve"}]}}}

A group's own rules come first, then the global ones, then the group's default,
then the global default; the first matching rule decides. `rate` limits the
requests a rule lets through per window (second, minute, hour, day). Method and
path are known only for HTTPS the proxy intercepts (hosts with a secret, or
with a rule that names a method or path); a tunnel is judged as `CONNECT`.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from nanoclaw.config import read_json_file
from nanoclaw.errors import ConfigError

POLICY_FILE = "egress-policy.json"
ACTIONS = ("allow", "deny", "approve")
WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
RATE = re.compile(r"(\d+)\s*/\s*(second|minute|hour|day)")


@dataclass(frozen=True)
class Rule:
    host: str
    action: str
    method: str = "*"
    path: str = "*"
    limit: int | None = None  # requests per window
    window: float = 0.0
    name: str = ""  # where it came from, for the audit log: "family#2", "global#1", "default"

    def matches(self, host: str, method: str, path: str) -> bool:
        return (fnmatch.fnmatchcase(host.lower(), self.host.lower())
                and (self.method == "*" or method in (self.method, "CONNECT"))
                and (self.path == "*" or method == "CONNECT" or fnmatch.fnmatchcase(path or "/", self.path)))

    @property
    def inspects(self) -> bool:
        """Needs the method or path: only an intercepted request can be judged by it."""
        return self.method != "*" or self.path != "*"


@dataclass(frozen=True)
class Decision:
    action: str  # allow | deny | approve | limited
    rule: str
    why: str = ""


@dataclass
class Policy:
    default: str = "allow"
    rules: tuple[Rule, ...] = ()
    groups: dict[str, tuple[str | None, tuple[Rule, ...]]] = field(default_factory=dict)
    _hits: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> Policy:
        """The policy at `path`; allow-everything (the proxy's private-address refusal still holds) if absent."""
        if not path.is_file():
            return cls()
        data = read_json_file(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected an object with default, rules and groups")
        groups = {}
        for group, spec in (data.get("groups") or {}).items():
            if not isinstance(spec, dict):
                raise ConfigError(f"{path}: groups.{group} must be an object")
            groups[str(group)] = (_action(spec.get("default"), f"groups.{group}.default", optional=True),
                                  _rules(spec.get("rules", []), f"{group}", path))
        return cls(_action(data.get("default", "allow"), "default"), _rules(data.get("rules", []), "global", path),
                   groups)

    def decide(self, group: str, host: str, method: str, path: str, now: float | None = None) -> Decision:
        own_default, own_rules = self.groups.get(group, (None, ()))
        for rule in (*own_rules, *self.rules):
            if rule.matches(host, method, path):
                if rule.action != "deny" and rule.limit is not None and not self._admit(group, rule, now):
                    return Decision("limited", rule.name, f"rate limit {rule.limit} per {rule.window:g} s reached")
                return Decision(rule.action, rule.name)
        return Decision(own_default or self.default, "default")

    def inspects(self, group: str, host: str) -> bool:
        """Whether a rule for `host` needs the method or path (then HTTPS to it is intercepted)."""
        _default, own_rules = self.groups.get(group, (None, ()))
        return any(r.inspects and fnmatch.fnmatchcase(host.lower(), r.host.lower()) for r in (*own_rules, *self.rules))

    def _admit(self, group: str, rule: Rule, now: float | None) -> bool:
        now = time.monotonic() if now is None else now
        hits = self._hits.setdefault(f"{group}|{rule.name}", deque())
        while hits and hits[0] <= now - rule.window:
            hits.popleft()
        if len(hits) >= (rule.limit or 0):
            return False
        hits.append(now)
        return True


def _action(value: object, where: str, optional: bool = False) -> str:
    if value is None and optional:
        return None  # type: ignore[return-value]
    if value not in ACTIONS:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(ACTIONS)}")
    return str(value)


def _rules(items: object, origin: str, path: Path) -> tuple[Rule, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{path}: rules of {origin} must be a list")
    rules = []
    for i, item in enumerate(items, 1):
        where = f"{path}: rule {i} of {origin}"
        if not isinstance(item, dict) or not isinstance(item.get("host"), str) or not item["host"]:
            raise ConfigError(f"{where}: needs a host (a name or glob such as *.example.com)")
        limit, window = None, 0.0
        if item.get("rate") is not None:
            match = RATE.fullmatch(str(item["rate"]).strip())
            if not match or int(match.group(1)) < 1:
                raise ConfigError(f"{where}: rate {item['rate']!r} should look like 60/hour")
            limit, window = int(match.group(1)), float(WINDOWS[match.group(2)])
        method = str(item.get("method", "*")).upper()
        route = str(item.get("path", "*"))
        if not route.startswith(("/", "*")):
            raise ConfigError(f"{where}: path {route!r} must start with / or *")
        rules.append(Rule(item["host"], _action(item.get("action"), where), method, route, limit, window,
                          f"{origin}#{i}"))
    return tuple(rules)
