"""Recipe switch over MQTT (``uplink.commands_enabled``): one command topic, answered on
``<topic>/result``, carried out through the station's audited switch path with
``source="mqtt"`` (the same path as the HMI, PLC and MES switches).

Who may switch is the broker's ACL: only the MES / line-control account gets write access to
``.../linecheck/cmd/recipe`` (docs/mqtt-uplink.md). Commands run on their own thread, one at a
time: a switch warms an engine for seconds and must not stall paho's network thread.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable

from line.uplink.payload import command_result_payload, encode

log = logging.getLogger(__name__)

Switch = Callable[[str, str, str], tuple[bool, str]]  # recipe_id, source, user -> ok, message
Reply = Callable[[bytes], None]

MAX_COMMAND_BYTES = 4096


def parse_command(payload: bytes) -> tuple[str | None, str, str | None, str | None]:
    """(recipe_id, user, request_id, problem). The payload is
    ``{"recipe_id": "...", "user": "...", "request_id": "..."}``; ``user`` and ``request_id``
    are optional and echoed for the audit trail and the reply."""
    if len(payload) > MAX_COMMAND_BYTES:
        return None, "", None, f"command longer than {MAX_COMMAND_BYTES} bytes"
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, "", None, f"not JSON: {exc}"
    if not isinstance(data, dict):
        return None, "", None, "a command is a JSON object"
    request_id = data.get("request_id")
    request_id = str(request_id) if request_id is not None else None
    recipe_id, user = data.get("recipe_id"), data.get("user", "")
    if not isinstance(recipe_id, str) or not recipe_id:
        return None, "", request_id, "recipe_id (a non-empty string) is required"
    if not isinstance(user, str):
        return None, "", request_id, "user must be a string"
    return recipe_id, user, request_id, None


class RecipeCommands:
    def __init__(self, station: str, switch: Switch) -> None:
        self.station = station
        self._switch = switch
        self.reply: Reply | None = None  # set once the link exists
        self.handled = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(16)
        self._thread = threading.Thread(target=self._run, name="mqtt-commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def on_message(self, topic: str, payload: bytes) -> None:
        """From paho's network thread: queue it and return."""
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.warning("MQTT recipe command dropped: %d commands already waiting", self._queue.qsize())

    def _run(self) -> None:
        while (payload := self._queue.get()) is not None:
            recipe_id, user, request_id, problem = parse_command(payload)
            if problem is None and recipe_id is not None:
                try:
                    ok, message = self._switch(recipe_id, "mqtt", user)
                except Exception as exc:  # a refused switch is an answer, not a dead thread
                    log.exception("MQTT recipe command failed")
                    ok, message = False, f"{type(exc).__name__}: {exc}"
            else:
                ok, message = False, problem or "invalid command"
            self.handled += 1
            if self.reply is not None:
                self.reply(encode(command_result_payload(self.station, time.time_ns(), request_id, recipe_id, ok, message)))
