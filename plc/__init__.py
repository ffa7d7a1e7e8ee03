"""Industrial protocols facing the PLC: Modbus TCP (server and client roles) and the OPC UA client.
Everything that receives a verdict is a ``ResultSink``; the words shared
with ``line`` (result codes, fail-safe reasons, the verdict message) are in ``plc.vocabulary``.

Nothing here imports ``line``, ``camera`` or ``inference``; requests that flow back from the
PLC (recipe select, commands) are delivered through the ``PlcRequests`` callbacks that the
station passes in.
"""

from plc.errors import PlcError, PlcFatalError, PlcRetryableError
from plc.link_state import LINK_TRANSITIONS, LinkStateHolder
from plc.vocabulary import (
    Delivery,
    FailSafeReason,
    LinkState,
    PlcRequests,
    ResultCode,
    ResultSink,
    StatusBits,
    VerdictMessage,
)

__all__ = [
    "LINK_TRANSITIONS",
    "Delivery",
    "FailSafeReason",
    "LinkState",
    "LinkStateHolder",
    "PlcError",
    "PlcFatalError",
    "PlcRequests",
    "PlcRetryableError",
    "ResultCode",
    "ResultSink",
    "StatusBits",
    "VerdictMessage",
]
