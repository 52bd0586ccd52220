"""Principals: who a key belongs to, and what each kind of principal may do by its nature.

A principal is named ``<kind>.<name>``: ``service.state``, ``module.pump1``, ``sink.cloud``,
``user.alice`` — or ``broker``, the broker itself (and code running inside its process). The
name is the key file's stem and the ZAP User-Id, so the broker and every worker see it.

What a principal may do comes from two places:

- its **kind** (this module): a module may serve ``org.plantd.module.<its name>``, publish
  ``data.<its name>.*`` and keep its own scope in the state service; the state service alone may
  serve ``org.plantd.State`` and publish ``state.*``; and so on (the table in docs/security.md);
- its **key file**: roles (``viewer``, ``operator``, ``engineer``, ``admin`` or any role of
  ``security.roles``), which grant access levels to service operations; for a third-party
  service, the services it may serve and the topics it may publish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = [
    "BROKER",
    "KINDS",
    "Grants",
    "check_principal",
    "kind_grants",
    "principal_kind",
    "telemetry_grants",
]

BROKER = "broker"
KINDS = ("service", "module", "sink", "user")
_NAME = re.compile(r"(service|module|sink|user)\.[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)


def check_principal(name: str) -> str | None:
    """None if ``name`` is a principal name, else what is wrong with it."""
    if name == BROKER or _NAME.fullmatch(name):
        return None
    return (
        f"a principal is KIND.NAME with KIND one of {', '.join(KINDS)} and NAME of letters, "
        f"digits, '-' and '_' (at most 64), got {name!r}"
    )


def principal_kind(name: str) -> str:
    """``module`` for ``module.pump1``; ``broker`` for the broker."""
    return name.partition(".")[0]


@dataclass(frozen=True, slots=True)
class Grants:
    """What one principal may do.

    ``roles`` grant access levels to operations (``security.roles``); ``serve`` lists the
    services it may register as a worker and ``call`` (service, operation) pairs it may call
    whatever its roles (both names where ``*`` matches anything); ``publish`` lists the topic
    prefixes it may publish on the bus; ``act_for`` the principals (``*`` globs) on whose
    behalf it may call, with their grants instead of its own (the proxy, for the people
    logged in to it: see ``plantd.mdp._broker``, "Delegation").
    """

    roles: frozenset[str] = frozenset()
    serve: tuple[str, ...] = ()
    call: tuple[tuple[str, str], ...] = ()
    publish: tuple[str, ...] = ()
    act_for: tuple[str, ...] = ()

    def merged(
        self,
        *,
        roles: frozenset[str] | None,
        serve: tuple[str, ...] = (),
        publish: tuple[str, ...] = (),
    ) -> Grants:
        """These grants with a key file's: its roles replace the kind's, if it names any."""
        return replace(
            self,
            roles=self.roles if roles is None else roles,
            serve=(*self.serve, *serve),
            publish=(*self.publish, *publish),
        )


# The plantd services and what their processes do (plantd-state, plantd-historian, plant serve
# echo, plant sim run).
_SERVICES: dict[str, Grants] = {
    "state": Grants(serve=("org.plantd.State",), publish=("state.",)),
    "historian": Grants(serve=("org.plantd.Historian",), publish=("event.historian.",)),
    "echo": Grants(serve=("org.plantd.module.Echo",)),
    "sim": Grants(serve=("org.plantd.sim.*",), publish=("event.sim.",)),
    "logger": Grants(serve=("org.plantd.Logger", "org.plantd.Health"), publish=("event.logger.",)),
    # The module host (`plant module host`): each module serves and publishes data with its
    # own key; the host's key is for what the process reports, its own and each module's logs.
    "modules": Grants(publish=("log.module.",)),
    # The HTTP proxy calls for the people logged in to it, each with their own roles (the
    # broker checks and audits every such call as that person's); by itself it only learns
    # what each service offers, to build its routes.
    "proxy": Grants(call=(("*", "operations"),), act_for=("user.*",)),
    # Alarms, calculated points and control loops (plantd-control): its loops and interlocks
    # write to modules as an operator would, and every such write is audited as its own.
    "control": Grants(
        roles=frozenset({"operator"}),
        serve=("org.plantd.Alarms", "org.plantd.Control"),
        publish=("data.calc.", "event.alarm.", "event.control."),
    ),
}


def telemetry_grants(principal: str) -> tuple[str, ...]:
    """The topics on which ``principal``'s process reports its own logs and metrics
    (``log.<source>.<level>``, ``metrics.<source>``; :func:`plantd.telemetry.source_of`)."""
    kind, _, name = principal.partition(".")
    source = name if kind == "service" else principal
    return (f"log.{source}.", f"metrics.{source}.")


def kind_grants(principal: str) -> Grants:
    """What ``principal`` may do by its kind alone."""
    if principal == BROKER:
        return Grants(roles=frozenset({"admin"}), serve=("*",), call=(("*", "*"),), publish=("",))
    kind, _, name = principal.partition(".")
    if kind == "module":
        # The state service confines a module to its own scope (org.plantd.module.NAME).
        return Grants(
            serve=(f"org.plantd.module.{name}",),
            call=(("org.plantd.State", "*"),),
            publish=(f"data.{name}.", *telemetry_grants(principal)),
        )
    if kind == "sink":
        # Reads from the historian to repair gaps; writes to modules for upstream commands
        # (Sparkplug DCMD). A key file that names roles replaces these.
        return Grants(
            roles=frozenset({"viewer", "operator"}),
            serve=(f"org.plantd.sink.{name}",),
            publish=(f"event.sink.{name}.", *telemetry_grants(principal)),
        )
    if kind == "service":
        grants = _SERVICES.get(name, Grants())
        return replace(grants, publish=(*grants.publish, *telemetry_grants(principal)))
    return Grants()
