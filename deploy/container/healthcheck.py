"""Container HEALTHCHECK: GET the HMI's ``/healthz`` and exit 0 only on HTTP 200.

Standard library only, because the check runs every few seconds inside the image and must not
depend on curl being there. The URL comes from ``LINECHECK_HEALTH_URL`` (set in the image; a
station whose HMI listens elsewhere overrides it with ``-e``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/healthz"


def check(url: str, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Return (healthy, reason). Any non-200 answer or transport error is unhealthy."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = int(response.status)
            return status == 200, f"HTTP {status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"unreachable: {exc}"


def main() -> int:
    url = os.environ.get("LINECHECK_HEALTH_URL", DEFAULT_URL)
    healthy, reason = check(url)
    print(f"{url}: {reason}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
