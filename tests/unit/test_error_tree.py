"""Every exception plantd and its drivers define is a ``PlantdError``, so one ``except
PlantdError`` (the CLI's, a worker's) tells plantd's own errors from bugs."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import plantd_drivers
import pytest

import plantd
from plantd.bus import BusDecodeError, decode_sample
from plantd.errors import PlantdError, RemoteProtocolError
from plantd.service import BadRequest
from plantd.sinks.mqtt._protobuf import ProtobufError

# Exceptions that must not be PlantdErrors, each with the reason. Empty: keep it that way
# unless a class truly has to stay outside (say, one that must be exactly a library's type).
OUTSIDE_THE_TREE: dict[str, str] = {}


def all_modules(package: ModuleType) -> list[ModuleType]:
    """``package`` and every module under it, imported (``__main__`` modules would run)."""
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            modules.append(importlib.import_module(info.name))
    return modules


def defined_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package in (plantd, plantd_drivers):
        for module in all_modules(package):
            for _, member in inspect.getmembers(module, inspect.isclass):
                if issubclass(member, BaseException) and member.__module__ == module.__name__:
                    found.append(member)
    return found


def test_the_walk_finds_the_exceptions_it_should() -> None:
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in defined_exceptions()}
    assert "plantd.errors.PlantdError" in names
    assert "plantd.bus._codec.BusDecodeError" in names
    assert "plantd_drivers.modbus._transport.NoAnswer" in names


def test_every_exception_defined_in_plantd_and_the_drivers_is_a_plantd_error() -> None:
    outside = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in defined_exceptions()
        if not issubclass(cls, PlantdError)
    ]
    assert sorted(set(outside) - set(OUTSIDE_THE_TREE)) == []


@pytest.mark.parametrize("error", [BusDecodeError, BadRequest, ProtobufError])
def test_protocol_errors_from_peers_are_remote_protocol_errors(error: type[Exception]) -> None:
    assert issubclass(error, RemoteProtocolError)


def test_decode_errors_are_still_value_errors() -> None:
    """Callers that catch ``ValueError`` around a decoder keep working."""
    with pytest.raises(ValueError, match="no header"):
        decode_sample(b"")
    assert issubclass(ProtobufError, ValueError)
