"""Who is calling, and may they: bearer tokens as the contract says.

Each token has a role. The rights each role has are the table `RIGHTS`; a department token is
further held to its own department's tasks (the views check the department of what they
serve). Without tokens Whistle runs open: every caller is an unnamed admin (dev mode).

    >>> auth = Auth([Grant(role="gateway", token="gateway-token-0001")])
    >>> auth.check("Bearer gateway-token-0001", "post_alarms").role
    'gateway'
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from schemas import Grant, token_digest

__all__ = ["OPEN", "PUBLIC", "RIGHTS", "Auth", "Caller", "Denied"]

PUBLIC = "public"
"""The right everyone has, token or not: probes, metrics and the console page (which holds no
data; it signs in with a department token to read any)."""

RIGHTS: dict[str, frozenset[str]] = {
    "post_alarms": frozenset({"gateway", "admin"}),
    "read_incidents": frozenset({"department", "admin"}),   # a department: where it has a task
    "change_incidents": frozenset({"admin"}),
    "read_tasks": frozenset({"department", "admin"}),       # a department: its own
    "change_tasks": frozenset({"department", "admin"}),     # a department: its own
    "stream_tasks": frozenset({"department", "admin"}),     # a department: its own
    "stream_all": frozenset({"admin"}),                     # every department's (the board)
    "read_departments": frozenset({"department", "admin"}),
    "read_registry": frozenset({"admin"}),
    "read_playbooks": frozenset({"admin"}),
    "change_playbooks": frozenset({"admin"}),
    "read_handover": frozenset({"admin"}),                  # the shift handover (交接班)
    "read_silences": frozenset({"admin"}),                  # maintenance silences (检修屏蔽)
    "change_silences": frozenset({"admin"}),
    "read_campaigns": frozenset({"department", "admin"}),   # joint campaigns (专项整治): a
    "change_campaigns": frozenset({"admin"}),               # department those it has a step in
    "record_findings": frozenset({"department", "admin"}),  # a department: its own findings
}
"""Which roles hold each right. A gateway only posts alarms; a department reads and changes
only its own department's tasks; an admin reads and changes everything."""


@dataclass(frozen=True)
class Caller:
    """Who made a request: the role, the department (a department token's, or the one an
    admin token names, e.g. the safety office's duty officer) and the person."""

    role: str
    department: str | None = None
    name: str = ""
    key: str = ""  # what its rate limit is counted by: part of the token's digest


    @property
    def person(self) -> str:
        """The person the token names (what an action records as `by`); "" for a token
        naming nobody, and in open mode."""
        return self.name if self.key else ""

    def may_see(self, department: str | None) -> bool:
        """Whether this caller may see what belongs to `department`."""
        return self.role == "admin" or (self.role == "department"
                                        and department == self.department)


OPEN = Caller(role="admin", name="open mode")


class Denied(Exception):
    """401 (no or unknown token) or 403 (a token without the right: `caller` says whose)."""

    def __init__(self, status: int, message: str, caller: Caller | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.caller = status, message, caller


class Auth:
    """The configured tokens, by their SHA-256."""

    def __init__(self, grants: Iterable[Grant]) -> None:
        self.by_digest = {g.digest: g for g in grants}

    @property
    def open(self) -> bool:
        return not self.by_digest

    def describe(self) -> str:
        """For the ready line: open mode, or how many tokens of each role."""
        if self.open:
            return "open mode: no tokens configured"
        roles = [g.role for g in self.by_digest.values()]
        return "tokens: " + ", ".join(f"{roles.count(r)} {r}" for r in
                                      ("admin", "department", "gateway") if r in roles)

    def caller(self, authorization: str | None) -> Caller:
        """The caller a request's Authorization header names, or Denied(401)."""
        if self.open:
            return OPEN
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Denied(401, "a bearer token is needed: Authorization: Bearer TOKEN")
        digest = token_digest(token.strip())
        grant = self.by_digest.get(digest)
        # compare_digest: the dict lookup found it by hash; this keeps the check constant-time
        if grant is None or not hmac.compare_digest(grant.digest, digest):
            raise Denied(401, "unknown token")
        return Caller(role=grant.role, department=grant.department, name=grant.name,
                      key=f"token:{digest[:16]}")

    def check(self, authorization: str | None, right: str) -> Caller:
        """The caller, if it holds `right`; else Denied(401 or 403)."""
        if right == PUBLIC:
            return OPEN if self.open else _anyone(self, authorization)
        caller = self.caller(authorization)
        if caller.role not in RIGHTS[right]:
            raise Denied(403, f"a {caller.role} token may not {right.replace('_', ' ')}", caller)
        return caller


def _anyone(auth: Auth, authorization: str | None) -> Caller:
    try:
        return auth.caller(authorization)
    except Denied:
        return Caller(role="anonymous")
