"""A PLC with an OPC UA server, for the OpcUaClientSink tests (run as a separate process):

    python -m tests.plc.opcua_plc --port N [--record FILE.jsonl] [--recipe-select CODE]

Exposes ns=2;s=Vision.<Name> variables (writable), records each change of ResultSeq
(a PostWrite hook, not polling) with the result nodes' values to a JSONL file
flushed per line, echoes the seq into ResultAck, and prints "READY <port>". With
``--secure DIR`` it only offers Basic256Sha256 SignAndEncrypt and accepts one user (--user).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

NODES: dict[str, ua.VariantType] = {
    "ResultSeq": ua.VariantType.UInt16,
    "PartId": ua.VariantType.UInt32,
    "ResultCode": ua.VariantType.UInt16,
    "RejectMask": ua.VariantType.UInt16,
    "DefectCount": ua.VariantType.UInt16,
    "ProcessingUs": ua.VariantType.UInt32,
    "ResultId": ua.VariantType.String,
    "Heartbeat": ua.VariantType.UInt16,
    "Status": ua.VariantType.UInt16,
    "ActiveRecipe": ua.VariantType.UInt16,
    "RecipeSelect": ua.VariantType.UInt16,
    "Command": ua.VariantType.UInt16,
    "ResultAck": ua.VariantType.UInt16,
    "NextPartId": ua.VariantType.UInt32,
}

FIELDS = {  # OpcUaClientConfig.nodes field -> node name
    "result_seq": "ResultSeq", "part_id": "PartId", "result_code": "ResultCode", "reject_mask": "RejectMask",
    "defect_count": "DefectCount", "processing_us": "ProcessingUs", "result_id": "ResultId",
    "heartbeat": "Heartbeat", "status": "Status", "active_recipe": "ActiveRecipe",
    "recipe_select": "RecipeSelect", "command": "Command", "result_ack": "ResultAck", "next_part_id": "NextPartId",
}


def node_ids(ns: int = 2) -> dict[str, str]:
    return {f: f"ns={ns};s=Vision.{n}" for f, n in FIELDS.items()}


class _Recorder:
    """PostWrite hook: runs inside the Write service, before its response is sent, so the
    recorded values are exactly those the client's write produced (no polling)."""

    def __init__(self, nodes: dict[str, Any], record: Any) -> None:
        self.nodes, self.record = nodes, record
        self.ids = {n.nodeid: name for name, n in nodes.items()}
        self.last = 0

    def _write(self, obj: dict[str, Any]) -> None:
        if self.record is not None:
            self.record.write(json.dumps(obj) + "\n")
            self.record.flush()

    async def on_write(self, event: Any, _dispatcher: Any) -> None:
        for wv in event.request_params.NodesToWrite:
            name = self.ids.get(wv.NodeId)
            if name == "Heartbeat":
                self._write({"event": "heartbeat", "value": int(wv.Value.Value.Value), "t_ns": time.time_ns()})
            elif name == "ResultSeq":
                val = int(wv.Value.Value.Value)
                if not val or val == self.last:
                    continue
                self.last = val
                rec: dict[str, Any] = {"event": "verdict", "seq": val, "t_ns": time.time_ns()}
                for n in ("PartId", "ResultCode", "RejectMask", "DefectCount", "ProcessingUs", "ResultId"):
                    rec[n] = await self.nodes[n].read_value()
                self._write(rec)
                await self.nodes["ResultAck"].write_value(ua.Variant(val, ua.VariantType.UInt16))


class _OneUser:
    """Accepts exactly one username/password (as a PLC's user list would)."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username == self.user and password == self.password:
            return User(role=UserRole.Admin, name=username)
        return None


async def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    if args.secure:  # Basic256Sha256 SignAndEncrypt + one user, self-signed certificate in DIR
        user, _, password = args.user.partition(":")
        server = Server(user_manager=_OneUser(user, password))  # type: ignore[arg-type]
    else:
        server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/plc")
    if args.secure:
        d = Path(args.secure)
        key, cert = d / "plc-key.pem", d / "plc-cert.der"
        await setup_self_signed_certificate(key, cert, "urn:linecheck:test-plc", "127.0.0.1",
                                            [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "test-plc"})
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:linecheck:test-plc")
    vision = await server.nodes.objects.add_object(f"ns={ns};s=Vision", "Vision")
    nodes: dict[str, Any] = {}
    for name, vt in NODES.items():
        init: Any = "" if vt == ua.VariantType.String else 0
        var = await vision.add_variable(f"ns={ns};s=Vision.{name}", name, ua.Variant(init, vt))
        await var.set_writable()
        nodes[name] = var
    if args.recipe_select:
        await nodes["RecipeSelect"].write_value(ua.Variant(args.recipe_select, ua.VariantType.UInt16))
    record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        server.subscribe_server_callback(CallbackType.PostWrite, _Recorder(nodes, record).on_write)
        print(f"READY {args.port}", flush=True)
        await stop.wait()
    if record is not None:
        record.close()
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--record")
    p.add_argument("--recipe-select", type=int, default=0)
    p.add_argument("--secure", metavar="DIR", help="Basic256Sha256 SignAndEncrypt; certificate kept in DIR")
    p.add_argument("--user", default="plc:secret", help="NAME:PASSWORD accepted in --secure mode")
    return asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
