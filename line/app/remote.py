"""``linecheck recipe list|switch ID --url URL --user NAME``: recipes of a running service,
through its REST API (HTTP Basic auth). The password comes from ``LINECHECK_PASSWORD`` or
a prompt; the user from ``--user``, ``LINECHECK_USER`` or a prompt.

Exit codes: 0 done, 1 switch refused (the reason is printed), 2 usage/auth/HTTP error,
3 service unreachable.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def call(url: str, user: str, password: str, method: str = "GET", body: Any = None, timeout_s: float = 120.0) -> Any:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - URL given by the operator
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw.decode(errors="replace")
        detail = payload.get("detail") or payload.get("message") if isinstance(payload, dict) else payload
        raise ApiError(exc.code, f"HTTP {exc.code}: {detail}", payload) from None


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    user = args.user or os.environ.get("LINECHECK_USER") or input("user: ")
    password = os.environ.get("LINECHECK_PASSWORD")
    if password is None:
        password = getpass.getpass(f"password for {user}: ")
    return user, password


def recipe_command(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    if args.action == "switch" and not args.recipe_id:
        print("linecheck recipe switch needs a recipe id", file=sys.stderr)
        return 2
    user, password = _credentials(args)
    try:
        if args.action == "list":
            data = call(f"{base}/api/recipes", user, password)
            for r in data["recipes"]:
                flags = ", ".join(f for f, on in (("active", r["active"]), ("warm", r["warm"])) if on)
                print(f"{r['id']}\tcode {r['code']}" + (f"\t({flags})" if flags else ""))
            for bad in data["invalid"]:
                print(f"invalid {bad['file']}: {'; '.join(bad['problems'])}")
            return 0
        try:
            result = call(f"{base}/api/recipes/switch?source=cli", user, password, "POST", {"recipe_id": args.recipe_id})
        except ApiError as exc:
            if exc.status == 409 and isinstance(exc.body, dict):
                print(f"switch to {args.recipe_id} refused: {exc.body.get('message')}", file=sys.stderr)
                return 1
            raise
        warm = " (warm)" if result.get("warm") else ""
        print(f"switched to {result['recipe_id']} in {result['switch_s'] * 1000:.0f} ms{warm}, preparation {result['prepare_s']:.3f} s")
        return 0
    except ApiError as exc:
        print(f"linecheck recipe {args.action}: {exc}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"linecheck recipe {args.action}: cannot reach {base}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 3
