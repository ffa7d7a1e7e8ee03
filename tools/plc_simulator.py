"""A PLC simulator for the Modbus client role: ``python -m tools.plc_simulator --port N``.

It plays the PLC side of the handshake in docs/plc.md: a pymodbus TCP server holding the map
(every holding register 0..max(map) writable, as on a PLC data block, plus 16+ coils). A
write hook (pymodbus device ``action``, called on every request, no polling) notices each
change of ``result_seq``, decodes the result from the registers as they will be after the
write, appends one JSON line per verdict to ``--record`` (flushed per line, so a killed
simulator keeps everything it acknowledged) and echoes the seq into ``result_ack``.

Each verdict line: seq, part_id, result_code, reject_mask, defect_count, processing_us,
t_ns (time.time_ns() at receipt) and t_mono_ns (time.perf_counter_ns(); CLOCK_MONOTONIC on
Linux, so comparable with the sender's perf_counter on the same host).

Options for demos and tests: ``--recipe-select CODE`` pre-loads recipe_select (the station
sees it on its first poll), ``--recipe-select-at SECONDS:CODE`` switches it later (repeatable),
``--delay-ms`` answers every request late (a slow PLC),
``--record-heartbeat`` also records heartbeat changes, ``--host`` (default 127.0.0.1).
Prints ``READY <port>`` on stdout once listening (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import IO, Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plc.config import ModbusMap
from plc.registers import decode_result, result_addresses


class PlcSimulator:
    """The register image plus the write hook; runs inside an asyncio loop."""

    def __init__(
        self,
        m: ModbusMap,
        record: IO[str] | None = None,
        delay_ms: float = 0.0,
        record_heartbeat: bool = False,
    ) -> None:
        self.map = m
        self.record = record
        self.delay = delay_ms / 1000.0
        self.record_heartbeat = record_heartbeat
        self.size = max([*m.vision_to_plc().values(), *m.plc_to_vision().values()]) + 1
        self.coils = (m.reject_coil // 16 + 1) * 16
        self.last_seq = 0
        self.verdicts = 0
        self.registers: list[int] | None = None  # the live holding-register block (set on first access)
        self.preset: dict[int, int] = {}  # applied to the live block on its first access

    def set_register(self, address: int, value: int) -> None:
        """Write a holding register as the PLC program would (runs on the server loop)."""
        if self.registers is None:  # no request yet: applied with the first one
            self.preset[address] = value & 0xFFFF
        else:
            self.registers[address] = value & 0xFFFF  # the block starts at address 0

    def device(self) -> SimDevice:
        hr = [SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)]
        co = [SimData(0, count=self.coils, values=False, datatype=DataType.BITS)]
        di = [SimData(0, count=16, values=False, datatype=DataType.BITS, readonly=True)]
        ir = [SimData(0, count=1, values=0, datatype=DataType.REGISTERS, readonly=True)]
        return SimDevice(id=0, simdata=(co, di, hr, ir), action=self.action)

    def _write(self, obj: dict[str, object]) -> None:
        if self.record is not None:
            self.record.write(json.dumps(obj) + "\n")
            self.record.flush()

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        t_ns, t_mono = time.time_ns(), time.perf_counter_ns()
        if self.delay:
            await asyncio.sleep(self.delay)
        if function_code in (1, 2, 4, 5, 15):  # coils / inputs: no handshake meaning
            if function_code in (5, 15) and set_values is not None:
                self._write(
                    {
                        "event": "coil",
                        "address": address,
                        "values": [bool(v) for v in set_values],
                        "t_ns": t_ns,
                        "t_mono_ns": t_mono,
                    }
                )
            return None
        if self.registers is None:
            self.registers = registers
            for a, v in self.preset.items():
                registers[a - start_address] = v
        if set_values is None:
            return None
        after = {address + i: int(v) for i, v in enumerate(set_values)}
        hb = self.map.heartbeat
        if self.record_heartbeat and hb in after and after[hb] != registers[hb - start_address]:
            self._write({"event": "heartbeat", "value": after[hb], "t_ns": t_ns, "t_mono_ns": t_mono})
        seq_addr = self.map.result_seq
        if seq_addr in after and after[seq_addr] != self.last_seq:
            regs = {a: after.get(a, registers[a - start_address]) for a in result_addresses(self.map)}
            rec = decode_result(self.map, regs)
            self.last_seq = rec["seq"]
            self.verdicts += 1
            self._write({"event": "verdict", **rec, "t_ns": t_ns, "t_mono_ns": t_mono})
            ack = self.map.result_ack
            if ack in after:
                cast(list[int], set_values)[ack - address] = rec["seq"]
            else:
                registers[ack - start_address] = rec["seq"]
        return None


async def _serve(args: argparse.Namespace) -> int:
    record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
    try:
        sim = PlcSimulator(ModbusMap(), record, args.delay_ms, args.record_heartbeat)
        if args.recipe_select is not None:
            sim.preset[sim.map.recipe_select] = args.recipe_select & 0xFFFF
        server = ModbusTcpServer(sim.device(), address=(args.host, args.port))
        await server.serve_forever(background=True)
        listener: Any = server.transport  # an asyncio.Server for a listener
        if listener is None:
            print(f"FAILED to listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
            return 2
        port = listener.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"READY {port}", flush=True)
        timers = [loop.call_later(float(at), sim.set_register, sim.map.recipe_select, int(code))
                  for at, code in (item.split(":", 1) for item in args.recipe_select_at)]
        await stop.wait()
        for t in timers:
            t.cancel()
        await server.shutdown()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listener.wait_closed(), 2)
        print(f"STOPPED verdicts={sim.verdicts} last_seq={sim.last_seq}", flush=True)
        return 0
    finally:
        if record is not None:
            record.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.plc_simulator", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5502)
    p.add_argument("--record", help="append one JSON line per verdict to this file")
    p.add_argument("--recipe-select", type=int, default=None, help="pre-load recipe_select with CODE")
    p.add_argument("--recipe-select-at", action="append", default=[], metavar="SECONDS:CODE",
                   help="write recipe_select=CODE SECONDS after start (repeatable; demos of a PLC switch)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="answer every request this late")
    p.add_argument("--record-heartbeat", action="store_true")
    args = p.parse_args(argv)
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
