"""Password hashes for HMI users: ``python -m line.passwords [PASSWORD]`` prints one.

The implementation lives in :mod:`plc.passwords` so that the OPC UA server (``plc`` may not
import ``line``) and the HMI share one format and one verifier."""

from __future__ import annotations

import sys

from plc.passwords import dummy_hash, hash_password, main, parse_hash, verify_password

__all__ = ["dummy_hash", "hash_password", "main", "parse_hash", "verify_password"]

if __name__ == "__main__":
    sys.exit(main())
