"""OPC UA against servers that are not our simulator (issue 12, item 11).

The servers here are asyncua's own ``Server``, built in the test with a few nodes of its own,
made as strict as the specification allows where asyncua is lenient: a Read or Browse of no
nodes answers BadNothingToDo (open62541 does), and a client certificate the server does not
trust is refused when the secure channel opens (with a ServiceFault, or with an ERR message).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary, uatcp_to_binary
from asyncua.ua.uaerrors._base import UaStatusCodeError
from cryptography.x509.oid import ExtendedKeyUsageOID
from plantd_drivers.opcua import ClientNotTrusted, OpcuaDriver, OpcuaModule
from plantd_drivers.opcua._security import client_identity
from plantd_drivers.opcua._session import Session

from plantd.cli import main
from plantd.config import load_config
from plantd.errors import ConfigError
from plantd.module import parse_module_file
from plantd.module._runtime import ModuleRuntime
from plantd.testing import write_config
from tests.drivers.module_harness import write_module


def _nothing_to_do(service: Callable[[Any], Any], items: str) -> Callable[[Any], Any]:
    """``service`` (Read, Browse) answering BadNothingToDo for a request of no items."""

    def strict(params: Any) -> Any:
        if not getattr(params, items):
            raise UaStatusCodeError(ua.StatusCodes.BadNothingToDo)
        return service(params)

    return strict


async def _start(server: Server) -> str:
    await server.start()
    assert server.bserver is not None
    return f"opc.tcp://127.0.0.1:{server.bserver.port}/independent"


@pytest.fixture
async def independent() -> AsyncIterator[str]:
    """A strict server: Objects/{Empty (a folder with nothing in it), Plant/{Level, Idle}}."""
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:0/independent")  # port 0: the OS picks
    index = await server.register_namespace("urn:independent")
    objects = server.nodes.objects
    await objects.add_folder(index, "Empty")
    plant = await objects.add_object(index, "Plant")
    await plant.add_variable(index, "Level", 1.5)
    await plant.add_folder(index, "Idle")
    attributes = server.iserver.attribute_service
    attributes.read = _nothing_to_do(attributes.read, "NodesToRead")  # type: ignore[method-assign]
    view = server.iserver.view_service
    view.browse = _nothing_to_do(view.browse, "NodesToBrowse")  # type: ignore[method-assign]
    endpoint = await _start(server)
    try:
        yield endpoint
    finally:
        await server.stop()


async def test_browse_an_independent_server_with_an_empty_folder(
    independent: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, ["opcua", "browse", independent]) == 0
    out = capsys.readouterr().out
    assert "namespace 2: urn:independent" in out
    assert "2:Empty  [Object]" in out
    assert "2:Plant  [Object]" in out

    assert await asyncio.to_thread(main, ["opcua", "browse", independent, "2:Empty"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "no nodes below 2:Empty" in captured.out

    args = ["opcua", "browse", independent, "2:Plant", "--depth", "2"]
    assert await asyncio.to_thread(main, args) == 0
    out = capsys.readouterr().out
    assert "2:Plant/2:Level  [Variable]  ns=2;i=3  Double = 1.5" in out
    assert "2:Plant/2:Idle  [Object]" in out


# -- a client certificate the server refuses ---------------------------------------------------

SECURE = """
driver: opcua
connection:
  endpoint: {endpoint}
  timeout: 2s
  security:
    policy: Basic256Sha256
    mode: SignAndEncrypt
    trust: [{trust}]
groups:
  - name: g
    mode: poll
    points:
      - {{name: level, path: "2:Plant/2:Level"}}
"""


def _refuse_every_client(style: str) -> Callable[..., None]:
    """UaProcessor.open_secure_channel of a server that trusts no client certificate."""

    def open_secure_channel(self: UaProcessor, algohdr: Any, seqhdr: Any, body: Any) -> None:
        if not algohdr.SenderCertificate:  # policy None: nothing to check
            return _ORIGINAL_OPEN(self, algohdr, seqhdr, body)
        code = ua.StatusCode(ua.StatusCodes.BadSecurityChecksFailed)
        request = struct_from_binary(ua.OpenSecureChannelRequest, body)
        if style == "fault":  # an OpenSecureChannel response carrying a ServiceFault
            fault = ua.ServiceFault()
            fault.ResponseHeader.ServiceResult = code
            handle = request.RequestHeader.RequestHandle
            self.send_response(handle, seqhdr, fault, ua.MessageType.SecureOpen)
        else:  # an ERR message, then the socket is closed (OPC UA Part 6, 7.1.2.4)
            error = ua.ErrorMessage(code, "the client certificate is not trusted")
            self._transport.write(uatcp_to_binary(ua.MessageType.Error, error))
            self._transport.close()

    return open_secure_channel


_ORIGINAL_OPEN = UaProcessor.open_secure_channel


@pytest.fixture
async def refusing(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A Basic256Sha256 server that trusts no client: (endpoint, its certificate)."""
    cert, key = tmp_path / "server" / "cert.der", tmp_path / "server" / "key.pem"
    cert.parent.mkdir()
    await setup_self_signed_certificate(
        key, cert, "urn:independent", "localhost", [ExtendedKeyUsageOID.SERVER_AUTH],
        {"commonName": "independent"},
    )  # fmt: skip
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:0/independent")
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    endpoint = await _start(server)
    try:
        yield endpoint, cert
    finally:
        await server.stop()


@pytest.mark.parametrize("style", ["fault", "error-message"])
async def test_a_refused_client_certificate_is_named(
    refusing: tuple[str, Path], tmp_path: Path, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(UaProcessor, "open_secure_channel", _refuse_every_client(style))
    endpoint, server_cert = refusing
    text = SECURE.format(endpoint=endpoint, trust=server_cert)
    module = parse_module_file(write_module(tmp_path / "modules.d", text, "m"), OpcuaModule)
    with pytest.raises(ClientNotTrusted) as refused:
        await Session.open(module)
    ours = tmp_path / "modules.d" / "pki" / "m-cert.der"
    assert str(refused.value) == (
        f"connecting to {endpoint}: the server refused our certificate "
        f"(BadSecurityChecksFailed): trust {ours} on the server"
    )


async def test_browse_says_which_certificate_to_trust(
    refusing: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(UaProcessor, "open_secure_channel", _refuse_every_client("fault"))
    monkeypatch.chdir(tmp_path)
    endpoint, server_cert = refusing
    args = ["opcua", "browse", endpoint, "--policy", "Basic256Sha256", "--trust", str(server_cert)]
    assert await asyncio.to_thread(main, args) == 1
    err = capsys.readouterr().err
    assert "AssertionError" not in err
    assert "the server refused our certificate (BadSecurityChecksFailed)" in err
    assert "trust plant-browse-cert.der on the server" in err


# -- the private key ---------------------------------------------------------------------------

MODULE = """
driver: opcua
connection:
  endpoint: opc.tcp://127.0.0.1:1
  security: {policy: Basic256Sha256, mode: Sign, trust: [trusted]}
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_generated_private_key_is_private(tmp_path: Path) -> None:
    module = parse_module_file(write_module(tmp_path, MODULE, "m"), OpcuaModule)
    previous = os.umask(0o000)  # the most permissive umask there is
    try:
        identity = await client_identity(module)
    finally:
        os.umask(previous)
    assert _mode(identity.private_key) == 0o600
    assert identity.certificate.is_file()


async def test_a_readable_private_key_is_made_private_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    module = parse_module_file(write_module(tmp_path, MODULE, "m"), OpcuaModule)
    key = (await client_identity(module)).private_key
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="plantd_drivers.opcua._security"):
        again = await client_identity(module)
    assert again.private_key == key
    assert _mode(key) == 0o600
    assert f"{key} was readable by others (mode 644); made it 600" in caplog.text


# -- reconnect backoff -------------------------------------------------------------------------

BACKOFF = """
driver: opcua
connection:
  endpoint: opc.tcp://127.0.0.1:1
{keys}
"""


async def test_the_reconnect_backoff_comes_from_the_module_file(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "config", {}))
    keys = "  reconnect_initial: 100ms\n  reconnect_max: 1s"
    module = parse_module_file(write_module(tmp_path, BACKOFF.format(keys=keys)), OpcuaModule)
    runtime = ModuleRuntime(config, module, OpcuaDriver(module))
    runtime.publisher.close()
    delays = [runtime.connection.failed(float(n), "server gone") for n in range(10)]
    assert 0.05 <= delays[0] <= 0.1
    assert max(delays) <= 1.0


def test_a_backoff_that_starts_above_its_maximum_is_refused(tmp_path: Path) -> None:
    keys = "  reconnect_initial: 45s\n  reconnect_max: 30s"
    with pytest.raises(ConfigError) as caught:
        parse_module_file(write_module(tmp_path, BACKOFF.format(keys=keys)), OpcuaModule)
    assert "connection.reconnect_initial: must not exceed reconnect_max (30 s), got 45 s" in str(
        caught.value
    )
