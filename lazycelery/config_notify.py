"""The config file's ``[notify]`` and ``[reports]`` tables: notification channels (webhook,
Slack, email) and report schedules, and the checks that each is complete (one line each).

Secrets (the webhook's HMAC secret, the SMTP password, a Slack URL) may be written in the file
or named by an environment variable (``secret_env``, ``password_env``, ``url_env``); they are
read when a channel is built (lazycelery.notify.channels), never printed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec

from lazycelery.cron import CronError, parse_cron, time_zone
from lazycelery.errors import ConfigError
from lazycelery.urls import check_url, mask_url

__all__ = ["CHANNEL_TYPES", "REPORT_FORMATS", "ChannelTable", "NotifyTable", "ReportSchedule",
           "ReportsTable", "notify_problems"]

CHANNEL_TYPES = ("webhook", "slack", "email")
REPORT_FORMATS = ("md", "html", "json")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: the keys that only make sense for one kind of channel
_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "secret": ("webhook",), "secret_env": ("webhook",), "headers": ("webhook",),
    "url": ("webhook", "slack"), "url_env": ("webhook", "slack"),
    "host": ("email",), "port": ("email",), "starttls": ("email",), "username": ("email",),
    "password": ("email",), "password_env": ("email",), "from_addr": ("email",),
    "to": ("email",), "ca_file": ("email",),
}


class ChannelTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One ``[notify.channels.NAME]`` table (docs/notifications.md)."""

    type: Literal["webhook", "slack", "email"]
    #: webhook / slack: where to POST (or ``url_env``: the variable holding it)
    url: str | None = None
    url_env: str | None = None
    #: webhook: the shared HMAC-SHA256 secret (or ``secret_env``); no secret, no signature
    secret: str | None = None
    secret_env: str | None = None
    headers: dict[str, str] = {}
    #: email: the SMTP server; STARTTLS on by default (refused if the server does not offer it)
    host: str | None = None
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    from_addr: str | None = msgspec.field(default=None, name="from")
    to: tuple[str, ...] = ()
    #: email: a PEM file of the CA that signed the server's certificate (a private CA)
    ca_file: str | None = None
    #: every channel: seconds per attempt, attempts after the first, first backoff (doubling)
    timeout: Annotated[float, msgspec.Meta(gt=0.0, le=600.0)] = 10.0
    retries: Annotated[int, msgspec.Meta(ge=0, le=20)] = 3
    backoff: Annotated[float, msgspec.Meta(ge=0.0, le=600.0)] = 1.0

    def __repr__(self) -> str:
        """Without the secrets: a table may end up in a log line or a traceback."""
        shown = {f: getattr(self, f) for f in self.__struct_fields__}
        for key in ("secret", "password"):
            if shown[key] is not None:
                shown[key] = "********"
        shown["headers"] = {name: "********" for name in self.headers}  # may hold a token
        if shown["url"] is not None:
            shown["url"] = mask_url(shown["url"]) if self.type != "slack" else "********"
        return f"ChannelTable({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


class NotifyTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The ``[notify]`` table."""

    channels: dict[str, ChannelTable] = {}
    #: NDJSON file of what could not be delivered (default: the user state directory)
    dead_letter: str | None = None
    #: notifications waiting for the delivery thread; more are counted lost
    queue_size: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000
    #: seconds between two attempts to deliver the dead letters again (0: only at start)
    retry_dead_letters: Annotated[float, msgspec.Meta(ge=0.0)] = 900.0


class ReportSchedule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One ``[[reports.schedules]]`` entry: when a report is made and where it goes."""

    cron: str
    #: the IANA time zone the cron fields are read in (``Europe/Paris``, DST-aware); UTC if unset
    tz: str | None = None
    name: str | None = None
    #: the period each report covers (a duration: 24h, 7d)
    since: str = "24h"
    format: Literal["md", "html", "json"] = "md"
    channels: tuple[str, ...] = ()
    #: a file to write it to; ``{date}`` and ``{time}`` are replaced (UTC)
    file: str | None = None


class ReportsTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The ``[reports]`` table."""

    schedules: tuple[ReportSchedule, ...] = ()


def notify_problems(notify: NotifyTable, reports: ReportsTable) -> Iterator[str]:
    """What a valid-typed ``[notify]`` / ``[reports]`` still gets wrong, one line each
    (without the ``config PATH:`` prefix)."""
    for name, channel in notify.channels.items():
        yield from _channel_problems(f"notify.channels.{name}", channel)
    for index, schedule in enumerate(reports.schedules):
        yield from _schedule_problems(f"reports.schedules[{index}]", schedule, notify)


def _channel_problems(where: str, channel: ChannelTable) -> Iterator[str]:
    defaults = ChannelTable(type=channel.type)
    for key, kinds in _ONLY_FOR.items():
        if channel.type not in kinds and getattr(channel, key) != getattr(defaults, key):
            shown = "from" if key == "from_addr" else key
            yield f"{where}.{shown}: only for {' and '.join(kinds)} channels"
    for key in ("url_env", "secret_env", "password_env"):
        value = getattr(channel, key)
        if value is not None and not _ENV_NAME.fullmatch(value):
            yield f"{where}.{key}: {value!r} is not an environment variable name"
    if channel.type in ("webhook", "slack"):
        if (channel.url is None) == (channel.url_env is None):
            yield f"{where}: set one of url or url_env"
        elif channel.url is not None:
            yield from _url_problem(f"{where}.url", channel.url)
        if channel.secret is not None and channel.secret_env is not None:
            yield f"{where}: set secret or secret_env, not both"
    else:
        if not channel.host:
            yield f"{where}.host: required for an email channel"
        if not channel.from_addr or "@" not in channel.from_addr:
            yield f"{where}.from: required for an email channel (an address)"
        if not channel.to or any("@" not in address for address in channel.to):
            yield f"{where}.to: required for an email channel (a list of addresses)"
        if channel.password is not None and channel.password_env is not None:
            yield f"{where}: set password or password_env, not both"


def _url_problem(where: str, url: str) -> Iterator[str]:
    if not url.startswith(("http://", "https://")):
        yield f"{where}: expected an http:// or https:// URL"
        return
    try:
        check_url(url, where)
    except ConfigError as exc:
        yield str(exc)


def _schedule_problems(where: str, schedule: ReportSchedule,
                       notify: NotifyTable) -> Iterator[str]:
    try:
        parse_cron(schedule.cron)
    except CronError as exc:
        yield f"{where}.cron: {exc}"
    if schedule.tz is not None:
        try:
            time_zone(schedule.tz)
        except CronError as exc:
            yield f"{where}.tz: {exc}"
    if not schedule.channels and not schedule.file:
        yield f"{where}: set channels, file or both (where the report goes)"
    for channel in schedule.channels:
        if channel not in notify.channels:
            known = ", ".join(sorted(notify.channels)) or "none defined"
            yield f"{where}.channels: unknown channel {channel!r} (known: {known})"
    if not re.fullmatch(r"\d+[smhdw]", schedule.since):
        yield f"{where}.since: expected a duration like 24h or 7d, got {schedule.since!r}"
