"""Principals (plantd.security._principal): names, kinds, and what each kind may do by nature."""

from __future__ import annotations

import pytest

from plantd.security import BROKER, KINDS, Grants, check_principal, kind_grants, principal_kind


@pytest.mark.parametrize(
    "name",
    [
        "broker",
        "service.state",
        "module.pump1",
        "sink.cloud",
        "user.alice",
        "user.Alice_2-b",
        "module.0",
        "user." + "a" * 64,
    ],
)
def test_principal_names_accepted(name: str) -> None:
    assert check_principal(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "user",
        "user.",
        "alice",
        "admin.alice",  # not a kind
        "User.alice",  # kinds are lower case
        "users.alice",
        "user.a.b",  # one dot
        "user.-alice",  # NAME starts with a letter or digit
        "user._alice",
        "user.al ice",
        "user.alice\n",
        "user.älice",  # ASCII only
        "user." + "a" * 65,
        "broker2",
        "broker.x",
        ".user.alice",
    ],
)
def test_principal_names_rejected_with_the_rule_and_the_name(name: str) -> None:
    problem = check_principal(name)
    assert problem is not None
    assert "KIND.NAME" in problem
    assert "service, module, sink, user" in problem
    assert repr(name) in problem


def test_kinds_and_broker() -> None:
    assert KINDS == ("service", "module", "sink", "user")
    assert BROKER == "broker"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("module.pump1", "module"), ("user.alice", "user"), ("broker", "broker"), ("x", "x")],
)
def test_principal_kind(name: str, kind: str) -> None:
    assert principal_kind(name) == kind


def test_module_grants_its_own_service_topics_and_the_state_service() -> None:
    assert kind_grants("module.pump1") == Grants(
        roles=frozenset(),
        serve=("org.plantd.module.pump1",),
        call=(("org.plantd.State", "*"),),
        publish=("data.pump1.", "log.module.pump1.", "metrics.module.pump1."),
    )


def test_sink_grants_viewer_and_operator_roles_its_service_and_events() -> None:
    assert kind_grants("sink.cloud") == Grants(
        roles=frozenset({"viewer", "operator"}),
        serve=("org.plantd.sink.cloud",),
        publish=("event.sink.cloud.", "log.sink.cloud.", "metrics.sink.cloud."),
    )


def _reports(source: str) -> tuple[str, str]:
    """The topics on which a process reports its own logs and metrics."""
    return (f"log.{source}.", f"metrics.{source}.")


@pytest.mark.parametrize(
    ("name", "grants"),
    [
        (
            "service.state",
            Grants(serve=("org.plantd.State",), publish=("state.", *_reports("state"))),
        ),
        (
            "service.historian",
            Grants(
                serve=("org.plantd.Historian",),
                publish=("event.historian.", *_reports("historian")),
            ),
        ),
        ("service.echo", Grants(serve=("org.plantd.module.Echo",), publish=_reports("echo"))),
        (
            "service.sim",
            Grants(serve=("org.plantd.sim.*",), publish=("event.sim.", *_reports("sim"))),
        ),
        (
            "service.logger",
            Grants(
                serve=("org.plantd.Logger", "org.plantd.Health"),
                publish=("event.logger.", *_reports("logger")),
            ),
        ),
        # The module host reports for every module it runs.
        ("service.modules", Grants(publish=("log.module.", *_reports("modules")))),
        # The proxy acts for people; by itself it only asks services what they offer.
        (
            "service.proxy",
            Grants(call=(("*", "operations"),), publish=_reports("proxy"), act_for=("user.*",)),
        ),
        # A third-party service: its key file says what it serves; it reports like any other.
        ("service.custom", Grants(publish=_reports("custom"))),
        ("user.alice", Grants()),  # a person: only roles from the key file
        ("robot.x", Grants()),
    ],
)
def test_service_and_user_grants(name: str, grants: Grants) -> None:
    assert kind_grants(name) == grants


def test_the_broker_may_do_everything() -> None:
    assert kind_grants(BROKER) == Grants(
        roles=frozenset({"admin"}), serve=("*",), call=(("*", "*"),), publish=("",)
    )


def test_merged_roles_replace_and_serve_publish_add() -> None:
    base = kind_grants("sink.cloud")
    merged = base.merged(roles=frozenset({"admin"}), serve=("org.x",), publish=("a.", "b."))
    assert merged == Grants(
        roles=frozenset({"admin"}),
        serve=("org.plantd.sink.cloud", "org.x"),
        publish=("event.sink.cloud.", "log.sink.cloud.", "metrics.sink.cloud.", "a.", "b."),
    )
    assert base.merged(roles=None).roles == frozenset({"viewer", "operator"})
    assert base.merged(roles=frozenset()).roles == frozenset()
    assert base == kind_grants("sink.cloud")  # frozen: merged is a new value
