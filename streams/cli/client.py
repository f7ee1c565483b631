"""The CLI's HTTP client for a running Whistle: one request with the bearer token (`--token`
or WHISTLE_TOKEN), and a refusal printed the way the API words it (the error, then each field
with its reason).

    answer = call(args, "whistle drill", "POST", "/api/v1/drills", json=body)
    if isinstance(answer, int):
        return answer  # 1 refused, 2 nothing answered: printed why
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx

__all__ = ["add_connection", "call"]


def call(args: argparse.Namespace, name: str, method: str, path: str,
         **kw: Any) -> httpx.Response | int:
    """The answer, or the exit code when there is none to use (printed why, after `name`)."""
    token = args.token or os.environ.get("WHISTLE_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.request(method, f"{args.url.rstrip('/')}{path}", headers=headers,
                               timeout=30, **kw)
    except httpx.HTTPError as exc:
        print(f"{name}: {args.url} did not answer: {exc}", file=sys.stderr)
        return 2
    if answer.status_code >= 300:
        try:
            body = answer.json()
            lines = [f"{name}: {answer.status_code} {body['error']}",
                     *(f"  {'.'.join(str(p) for p in d['loc'])}: {d['msg']}"
                       for d in body.get("details", []))]
        except (ValueError, KeyError, TypeError):
            lines = [f"{name}: {answer.status_code} {answer.text}"]
        print("\n".join(lines), file=sys.stderr)
        return 1
    return answer


def add_connection(command: argparse.ArgumentParser, default_url: str, token: str) -> None:
    """`--url` and `--token` (whose help says whose token it is)."""
    command.add_argument("--url", default=default_url, help="a running Whistle (default "
                         "WHISTLE_URL or http://127.0.0.1:6066)")
    command.add_argument("--token", help=f"{token} (or WHISTLE_TOKEN)")
