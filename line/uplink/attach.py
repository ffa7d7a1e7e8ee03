"""Wiring the uplink into a built station: observer for parts, listener for alarms, a sink for
lifecycle and status. Called from line/app/assembly.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from line.errors import ConfigError
from line.uplink.commands import RecipeCommands
from line.uplink.config import UplinkConfig, uplink_problems
from line.uplink.payload import Topics
from line.uplink.publisher import Uplink
from line.uplink.sink import UplinkSink, part_facts

if TYPE_CHECKING:
    from line.loop.station import Outcome, Station


def attach_uplink(config: UplinkConfig, station: Station, storage_dir: Path, file: str = "station config") -> UplinkSink:
    """Build the uplink for ``station`` and hook it in (the caller appends the sink). A file
    it needs that cannot be read (password, CA) is a :class:`ConfigError` naming the key."""
    problems = uplink_problems(file, config)  # check_station reported these already; a file may go meanwhile
    if problems:
        raise ConfigError(problems)
    topics = Topics.of(config.topic, station.station_id)
    commands: RecipeCommands | None = None
    if config.commands_enabled:

        def switch(recipe_id: str, source: str, user: str) -> tuple[bool, str]:
            if recipe_id not in station.book.recipes:
                return False, f"unknown recipe {recipe_id!r}"
            result = station.request_switch(recipe_id, source, user)
            return result.ok, result.message

        commands = RecipeCommands(config.topic.station or station.station_id, switch)

    def active_recipe() -> str | None:
        active = station.book.active
        return active.recipe.id if active else None

    uplink = Uplink(
        config, station.station_id, storage_dir / "mqtt-outbox.db", station.alarm_set,
        lambda: dict(station.stats.counts), active_recipe,
        subscriptions=(topics.command,) if commands else (),
        on_message=commands.on_message if commands else None,
    )  # fmt: skip
    if commands is not None:
        commands.reply = lambda payload: uplink.publish_direct(topics.command_result, payload)

    def observe(outcome: Outcome) -> None:
        uplink.offer_part(part_facts(outcome.record, outcome.verdict.reject_bin))

    station.observers.append(observe)
    station.alarm_set.listeners.append(uplink.on_alarm)
    return UplinkSink(uplink, commands)
