"""What the Alarms and Control pages need from the server: who may do what there.

Theory of operation. The two pages are shells like every other page (``_pages``): their data
come from ``org.plantd.Alarms`` and ``org.plantd.Control`` (``plantd-control``) through the
generic REST routes, and live from the SSE stream (``event.alarm.`` for alarms;
``event.control.`` and ``data.calc`` for control). The server never calls those services to
draw a page. What it adds is the access level each of the pages' actions needs under the
device's policy (``security.operations``, as the broker will judge it), so the page can mark a
button the person's levels do not include (``data-permitted="false"``) and say so in the
dialog. It only marks: the broker decides on every call, and a refusal is shown in words (a
403 problem), exactly as for a point write.

The alarm count in the header of every page (``static/alarm-badge.js``) needs nothing from
here: it reads ``org.plantd.Alarms list`` (``read``) and follows ``event.alarm.``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request

from plantd.proxy._context import ProxyContext, User

__all__ = [
    "ALARMS_SERVICE",
    "ALARM_VIEWS",
    "CONTROL_SERVICE",
    "SHELVE_CHOICES",
    "alarm_values",
    "control_values",
]

# The proxy stays generic: these are names on the bus, not an import of plantd.control.
ALARMS_SERVICE: Final = "org.plantd.Alarms"
CONTROL_SERVICE: Final = "org.plantd.Control"

# The Alarms page's filters (?view=…): what an operator must see by default is everything
# that is active or still waits for an acknowledgement (ISA-18.2's "alarm summary").
ALARM_VIEWS: Final = (
    ("attention", "Active or unacknowledged"),
    ("active", "Active"),
    ("unacknowledged", "Unacknowledged"),
    ("all", "All"),
)

# Shelving durations offered (seconds, label); the service allows up to 30 days.
SHELVE_CHOICES: Final = (
    (900, "15 minutes"),
    (3600, "1 hour"),
    (4 * 3600, "4 hours"),
    (8 * 3600, "8 hours (a shift)"),
    (24 * 3600, "24 hours"),
)

Values = Callable[[Request, User], dict[str, Any]]


def _permitted(ctx: ProxyContext, user: User, service: str, operation: str) -> bool:
    return user.may(ctx.people.access_of(service, operation))


def alarm_values(ctx: ProxyContext) -> Values:
    """The Alarms page's values: the filter asked for, the shelving choices, and whether the
    person's levels include what ``ack``, ``shelve``, ``unshelve`` and ``history`` need."""

    def values(request: Request, user: User) -> dict[str, Any]:
        view = request.query_params.get("view", "attention")
        return {
            "view": view if view in dict(ALARM_VIEWS) else "attention",
            "views": ALARM_VIEWS,
            "shelve_choices": SHELVE_CHOICES,
            "may_ack": _permitted(ctx, user, ALARMS_SERVICE, "ack"),
            "may_shelve": _permitted(ctx, user, ALARMS_SERVICE, "shelve"),
            "may_unshelve": _permitted(ctx, user, ALARMS_SERVICE, "unshelve"),
            "may_history": _permitted(ctx, user, ALARMS_SERVICE, "history"),
        }

    return values


def control_values(ctx: ProxyContext) -> Values:
    """The Control page's values: whether the person's levels include what ``mode``,
    ``setpoint``, ``output`` and ``reset`` need."""

    def values(request: Request, user: User) -> dict[str, Any]:
        return {
            f"may_{operation}": _permitted(ctx, user, CONTROL_SERVICE, operation)
            for operation in ("mode", "setpoint", "output", "reset")
        }

    return values
