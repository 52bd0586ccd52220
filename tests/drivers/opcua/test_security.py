"""Basic256Sha256 against the simulator: certificates made here, a trust list for the server's
certificate, username/password, a client certificate generated on first use, and a server
whose certificate is not trusted refused with an error that says what to do."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID
from plantd_drivers.opcua import OpcuaDriver, OpcuaModule, ServerNotTrusted
from plantd_drivers.opcua._security import client_identity, thumbprint

from hil.opcua import OpcuaSimulator, SecurityModel
from plantd.bus import Quality
from plantd.errors import ConfigError, DeviceFault, DeviceUnavailable
from plantd.module import parse_module_file
from plantd.testing import check_driver
from tests.drivers.module_harness import write_module
from tests.drivers.opcua.conftest import line_model

SECURE = """
driver: opcua
connection:
  endpoint: {endpoint}
  namespaces: {{sim: "urn:plantd:sim"}}
  security:
    policy: Basic256Sha256
    mode: {mode}
    trust: [{trust}]
  username: operator
  password: {password}
groups:
  - name: live
    interval: 100ms
    points:
      - {{name: count, node: "ns=sim;s=Line1.Count"}}
  - name: settings
    mode: poll
    points:
      - {{name: speed, path: "sim:Line1/sim:Speed", writable: true}}
"""


@dataclasses.dataclass
class Pki:
    directory: Path
    modules: Path

    def module(self, endpoint: str, trust: Path, mode: str = "SignAndEncrypt",
               password: str = "secret") -> OpcuaModule:  # fmt: skip
        text = SECURE.format(endpoint=endpoint, mode=mode, trust=trust, password=password)
        return parse_module_file(write_module(self.modules, text, "secure"), OpcuaModule)


@pytest.fixture
async def secure_sim(tmp_path: Path) -> AsyncIterator[tuple[OpcuaSimulator, Pki]]:
    pki = Pki(tmp_path / "sim-pki", tmp_path / "modules.d")
    # The module's client certificate, made before the server starts so that the server
    # can be told to trust it (the driver would generate the same files on first use).
    probe = pki.module("opc.tcp://127.0.0.1:1", pki.directory)
    identity = await client_identity(probe)
    model = dataclasses.replace(
        line_model(),
        users={"operator": "secret"},
        security=SecurityModel(
            policies=("Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"),
            certificate=pki.directory / "server-cert.der",
            private_key=pki.directory / "server-key.pem",
            trusted_clients=(identity.certificate,),
        ),
    )
    endpoint = "opc.tcp://127.0.0.1:0/plantd/sim"  # the simulator says which port it got
    async with OpcuaSimulator(model, endpoint=endpoint) as simulator:
        yield simulator, pki


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_basic256sha256_with_trust_list_and_password(
    secure_sim: tuple[OpcuaSimulator, Pki], mode: str
) -> None:
    sim, pki = secure_sim
    assert sim.certificate is not None
    module = pki.module(sim.endpoint, sim.certificate, mode=mode)
    readings = await check_driver(OpcuaDriver(module), module)
    assert readings["speed"].quality is Quality.GOOD
    driver = OpcuaDriver(module)
    await driver.open()
    try:
        speed = module.point("speed")
        assert speed is not None
        await driver.write(speed, 77)
        assert sim.get("Line1.Speed") == 77.0
        assert driver.status()["security"] == f"Basic256Sha256/{mode}"
        assert sim.session_count() == 1
    finally:
        await driver.close()


def test_the_simulators_private_key_is_private(secure_sim: tuple[OpcuaSimulator, Pki]) -> None:
    _, pki = secure_sim
    assert (pki.directory / "server-key.pem").stat().st_mode & 0o777 == 0o600


async def test_a_trusted_directory_is_enough(secure_sim: tuple[OpcuaSimulator, Pki]) -> None:
    sim, pki = secure_sim
    module = pki.module(sim.endpoint, pki.directory)  # the directory holding the server cert
    driver = OpcuaDriver(module)
    await driver.open()
    await driver.close()


async def test_an_untrusted_server_certificate_is_refused(
    secure_sim: tuple[OpcuaSimulator, Pki], tmp_path: Path
) -> None:
    sim, pki = secure_sim
    other = tmp_path / "other"
    other.mkdir()
    await setup_self_signed_certificate(
        other / "key.pem", other / "cert.der", "urn:someone:else", "elsewhere",
        [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "someone else"},
    )  # fmt: skip
    module = pki.module(sim.endpoint, other / "cert.der")
    driver = OpcuaDriver(module)
    with pytest.raises(ServerNotTrusted) as refused:
        await driver.open()
    assert sim.certificate is not None
    message = str(refused.value)
    assert f"the server certificate of {sim.endpoint} is not trusted" in message
    assert thumbprint(sim.certificate.read_bytes()) in message
    assert "add its certificate to the trust list" in message
    assert str(other / "cert.der") in message
    assert isinstance(refused.value, DeviceUnavailable)  # the module keeps retrying
    assert sim.session_count() == 0


async def test_a_wrong_password_is_refused(secure_sim: tuple[OpcuaSimulator, Pki]) -> None:
    sim, pki = secure_sim
    assert sim.certificate is not None
    module = pki.module(sim.endpoint, sim.certificate, password="guess")
    with pytest.raises(DeviceFault, match=r"connecting to .*: BadUserAccessDenied"):
        await OpcuaDriver(module).open()  # the server refused: a fault, retried all the same
    assert sim.session_count() == 0


async def test_a_client_certificate_is_generated_on_first_use(tmp_path: Path) -> None:
    pki = Pki(tmp_path, tmp_path / "modules.d")
    module = pki.module("opc.tcp://127.0.0.1:1", tmp_path)
    identity = await client_identity(module)
    assert identity.certificate == tmp_path / "modules.d" / "pki" / "secure-cert.der"
    assert identity.certificate.is_file()
    assert identity.private_key.is_file()
    assert identity.application_uri.startswith("urn:plantd:")
    before = identity.certificate.read_bytes()
    assert (await client_identity(module)).certificate.read_bytes() == before  # kept


def test_a_secure_policy_needs_a_mode_and_a_trust_list(tmp_path: Path) -> None:
    text = """
driver: opcua
connection:
  endpoint: opc.tcp://127.0.0.1:4840
  security: {policy: Basic256Sha256}
"""
    with pytest.raises(ConfigError) as caught:
        parse_module_file(write_module(tmp_path, text, "bad"), OpcuaModule)
    message = str(caught.value)
    assert "connection.security.mode" in message
    assert "policy Basic256Sha256 goes with mode Sign or SignAndEncrypt, got None" in message
    assert "connection.security.trust" in message
