"""Retryable and fatal PLC errors are different types (docs/architecture.md)."""

from __future__ import annotations


class PlcError(Exception):
    pass


class PlcRetryableError(PlcError):
    """Link down, timeout, busy peer: the supervisor reconnects; the verdict is not resent late."""


class PlcFatalError(PlcError):
    """Configuration the peer can never accept (bad address, wrong unit id, access denied)."""


class DeadlineExceeded(PlcRetryableError):
    """The write could not complete before the part's deadline; it is dropped, never sent late."""
