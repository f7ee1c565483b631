"""Who may call Whistle (bearer tokens) and where departments' own systems take their tasks
(webhooks): the `--config` file, or `WHISTLE_TOKENS` / `WHISTLE_WEBHOOKS` as JSON.

    >>> Config.model_validate({"tokens": [{"role": "department", "department": "police",
    ...                                    "token": "s3cret-police-token"}]}).tokens[0].role
    'department'
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, model_validator

from schemas.common import DepartmentId, Duration, field_error

__all__ = ["FEEDBACK_TARGET", "ROLES", "Config", "Grant", "Role", "Webhook", "token_digest"]

Role = Literal["gateway", "department", "admin"]
ROLES: tuple[str, ...] = ("gateway", "department", "admin")

FEEDBACK_TARGET = "feedback"
"""The webhook target that receives feedback for the people who reported an incident (the
12345 hotline's system, say); every other target is a department id."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def token_digest(token: str) -> str:
    """What a token is compared by: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Grant(BaseModel):
    """One bearer token and what it may do. A gateway only posts alarms; a department reads
    and changes its own tasks; an admin reads and changes everything. Give the token itself
    (`token`, at least 16 characters) or only its SHA-256 (`token_sha256`), so the file need
    not hold the secret."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    department: DepartmentId | None = None
    token: SecretStr | None = Field(default=None, min_length=16, max_length=512)
    token_sha256: str | None = None
    name: str = Field(default="", max_length=200,
                      description="the person who holds it (王值班): every action taken with "
                                  "it is recorded as theirs")

    @model_validator(mode="after")
    def _one_secret(self) -> Grant:
        if (self.token is None) == (self.token_sha256 is None):
            raise field_error("token", "value_error", "give exactly one of token and "
                              "token_sha256")
        if self.token_sha256 is not None and not _SHA256.match(self.token_sha256):
            raise field_error("token_sha256", "value_error", "64 lower-case hex digits")
        if self.role == "department" and self.department is None:
            raise field_error("department", "missing", "a department token names its "
                              "department")
        if self.role == "gateway" and self.department is not None:
            raise field_error("department", "value_error", "a gateway token has no department")
        return self

    @property
    def digest(self) -> str:
        if self.token is not None:
            return token_digest(self.token.get_secret_value())
        assert self.token_sha256 is not None
        return self.token_sha256


class Webhook(BaseModel):
    """Where a target's own system takes what Whistle sends it. Each POST is signed:
    `X-Whistle-Signature: sha256=HMAC-SHA256(secret, "<X-Whistle-Timestamp>.<body>")`."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    secret: SecretStr = Field(min_length=16, max_length=512)
    timeout: Duration = Field(default=timedelta(seconds=5),
                              description="per attempt: connect, send and answer")
    attempts: int = Field(default=5, ge=1, le=20)
    backoff: Duration = Field(default=timedelta(seconds=1),
                              description="wait before the second attempt; doubles each time")
    max_backoff: Duration = timedelta(seconds=60)
    max_in_flight: int = Field(default=16, ge=1, le=256,
                               description="deliveries under way at once for this target")

    @model_validator(mode="after")
    def _sane(self) -> Webhook:
        if not timedelta(milliseconds=50) <= self.timeout <= timedelta(minutes=2):
            raise field_error("timeout", "value_error", "between 50ms and 2m")
        if self.max_backoff < self.backoff:
            raise field_error("max_backoff", "value_error", "must not be less than backoff")
        return self


class Config(BaseModel):
    """The `--config` file (YAML or JSON)."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[Grant] = Field(default_factory=list)
    webhooks: dict[str, Webhook] = Field(
        default_factory=dict, description=f"by department id, or {FEEDBACK_TARGET!r}")

    @model_validator(mode="after")
    def _unique_tokens(self) -> Config:
        seen: set[str] = set()
        for i, grant in enumerate(self.tokens):
            if grant.digest in seen:
                raise field_error(("tokens", i, "token"), "value_error",
                                  "the same token is given twice")
            seen.add(grant.digest)
        for target in self.webhooks:
            if not re.match(r"^[a-z][a-z0-9_]{0,62}$", target):
                raise field_error(("webhooks", target), "value_error",
                                  "a department id or 'feedback'")
        return self
