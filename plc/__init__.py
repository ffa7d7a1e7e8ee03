"""Industrial protocols: Modbus TCP (server and client roles), OPC UA client (PLC) and
OPC UA server (MES). Everything that receives a verdict is a ``ResultSink``.

Nothing here imports ``line``, ``camera`` or ``inference``; requests that flow back from the
PLC (recipe select, commands) are delivered through the ``PlcRequests`` callbacks that the
station passes in.
"""

from plc.errors import PlcError, PlcFatalError, PlcRetryableError
from plc.vocabulary import (
    Delivery,
    LinkState,
    PlcRequests,
    ResultCode,
    ResultSink,
    StatusBits,
    VerdictMessage,
)

__all__ = [
    "Delivery",
    "LinkState",
    "PlcError",
    "PlcFatalError",
    "PlcRequests",
    "PlcRetryableError",
    "ResultCode",
    "ResultSink",
    "StatusBits",
    "VerdictMessage",
]
