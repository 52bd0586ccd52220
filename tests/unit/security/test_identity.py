"""This process's identity (plantd.security._identity): key files, lookup order, secure()."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from plantd.config import PlantdConfig
from plantd.errors import SecurityError
from plantd.security import (
    Credentials,
    Identity,
    KeyFile,
    assume_identity,
    current_identity,
    generate,
    secret_key_path,
    secure,
    service_identity,
    use_identity,
    user_identity,
    write_key_file,
)
from tests.unit.security._keys import write_config


@pytest.fixture(autouse=True)
def no_process_identity() -> Iterator[None]:
    use_identity(None)
    try:
        yield
    finally:
        use_identity(None)


@pytest.fixture
def config(tmp_path: Path) -> PlantdConfig:
    return write_config(tmp_path)


@pytest.fixture
def broker(config: PlantdConfig) -> KeyFile:
    """The broker's public key file, where the config says the keys are."""
    key = generate()
    keys = config.security.keys_dir(config.source_dir)
    write_key_file(keys / "broker.key", key, secret=False)
    return key


def secret_file(path: Path, metadata: dict[str, str] | None = None) -> KeyFile:
    key = generate(metadata)
    write_key_file(path, key, secret=True)
    return key


# -- Identity -------------------------------------------------------------------------------------


def test_credentials_come_from_the_secret_and_the_brokers_public_key(
    tmp_path: Path, config: PlantdConfig, broker: KeyFile
) -> None:
    path = secret_key_path(config, "service.state")
    assert path == tmp_path / "data" / "secrets" / "service.state.key_secret"
    mine = secret_file(path, {"principal": "service.state"})
    identity = Identity(path, config.security.keys_dir(config.source_dir) / "broker.key")
    assert identity.credentials() == Credentials(
        "service.state", mine.public, mine.secret or b"", broker.public
    )
    assert identity.principal == "service.state"


def test_the_principal_is_the_file_name_without_metadata(tmp_path: Path) -> None:
    server = tmp_path / "broker.key"
    write_key_file(server, generate(), secret=False)
    secret_file(tmp_path / "user.alice.key_secret")
    assert Identity(tmp_path / "user.alice.key_secret", server).principal == "user.alice"


def test_credentials_are_read_again_when_the_secret_changes(tmp_path: Path) -> None:
    server = tmp_path / "broker.key"
    write_key_file(server, generate(), secret=False)
    path = tmp_path / "module.pump1.key_secret"
    first = secret_file(path, {"principal": "module.pump1"})
    identity = Identity(path, server)
    before = identity.credentials()
    assert before.public == first.public
    assert identity.credentials() is before  # unchanged files are not read again
    rotated = secret_file(path, {"principal": "module.pump1"})  # plant keys rotate
    after = identity.credentials()
    assert (after.public, after.secret) == (rotated.public, rotated.secret)
    assert identity.credentials() is after


def test_credentials_are_read_again_when_the_broker_key_changes(tmp_path: Path) -> None:
    server = tmp_path / "broker.key"
    write_key_file(server, generate(), secret=False)
    secret_file(tmp_path / "user.a.key_secret")
    identity = Identity(tmp_path / "user.a.key_secret", server)
    identity.credentials()
    new_broker = generate()
    write_key_file(server, new_broker, secret=False)
    assert identity.credentials().server == new_broker.public


def test_a_public_key_file_is_no_identity(tmp_path: Path) -> None:
    server = tmp_path / "broker.key"
    write_key_file(server, generate(), secret=False)
    path = tmp_path / "user.a.key_secret"
    write_key_file(path, generate(), secret=False)
    with pytest.raises(SecurityError, match="holds no secret-key") as caught:
        Identity(path, server).credentials()
    assert str(path) in str(caught.value)


# -- service_identity -----------------------------------------------------------------------------


def test_service_identity_reads_its_keys_at_once(config: PlantdConfig, broker: KeyFile) -> None:
    mine = secret_file(secret_key_path(config, "service.historian"))
    identity = service_identity(config, "service.historian")
    assert identity is not None
    assert identity.credentials().public == mine.public
    assert identity.credentials().server == broker.public


def test_service_identity_names_a_missing_secret_and_plant_keys_init(
    config: PlantdConfig, broker: KeyFile
) -> None:
    with pytest.raises(SecurityError) as caught:
        service_identity(config, "service.state")
    message = str(caught.value)
    assert message.startswith(f"{secret_key_path(config, 'service.state')}: no secret key there")
    assert "plant keys init" in message


def test_service_identity_names_a_missing_broker_key_and_plant_keys_init(
    config: PlantdConfig,
) -> None:
    secret_file(secret_key_path(config, "service.state"))
    broker_path = config.security.keys_dir(config.source_dir) / "broker.key"
    with pytest.raises(SecurityError) as caught:
        service_identity(config, "service.state")
    assert str(caught.value).startswith(f"{broker_path}: the broker's public key is missing")
    assert "plant keys init" in str(caught.value)


def test_without_curve_there_is_no_identity(tmp_path: Path) -> None:
    config = write_config(tmp_path, security={"mode": "none"})
    assert service_identity(config, "service.state") is None
    assert user_identity(config, {"PLANTD_IDENTITY": "/x"}, Path("/y")) is None


def test_assume_identity_sets_the_process_identity(config: PlantdConfig, broker: KeyFile) -> None:
    secret_file(secret_key_path(config, "service.state"))
    identity = assume_identity(config, "service.state")
    assert identity is not None
    assert current_identity() is identity
    assert assume_identity(config, None) is None  # the broker: keys of its own
    assert current_identity() is None


def test_assume_identity_without_curve_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    use_identity(Identity(tmp_path / "a", tmp_path / "b"))
    config = write_config(tmp_path, security={"mode": "none"})
    assert assume_identity(config, "service.state") is None
    assert current_identity() is None
    assert "security.mode is 'none'" in caplog.text


# -- user_identity: where plant finds its user's key ----------------------------------------------


@pytest.fixture
def candidates(tmp_path: Path) -> dict[str, Path]:
    """A secret key file at each place user_identity looks, and a config naming one."""
    login = pwd.getpwuid(os.geteuid()).pw_name
    paths = {
        "explicit": tmp_path / "explicit.key_secret",
        "environ": tmp_path / "environ.key_secret",
        "config": tmp_path / "config.key_secret",
        "xdg": tmp_path / "xdg" / "plantd" / "identity.key_secret",
        "home": tmp_path / "home" / ".config" / "plantd" / "identity.key_secret",
        "secrets": tmp_path / "data" / "secrets" / f"user.{login}.key_secret",
    }
    for path in paths.values():
        secret_file(path)
    return paths


def lookup(
    tmp_path: Path, environ: dict[str, str], *, explicit: Path | None = None, named: bool = False
) -> Path:
    security = {"identity": str(tmp_path / "config.key_secret")} if named else {}
    config = write_config(tmp_path, security=security)
    identity = user_identity(config, environ, explicit)
    assert identity is not None
    return identity.secret_path


def test_user_identity_lookup_order(tmp_path: Path, candidates: dict[str, Path]) -> None:
    environ = {
        "PLANTD_IDENTITY": str(candidates["environ"]),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
    }
    explicit = candidates["explicit"]
    assert lookup(tmp_path, environ, explicit=explicit, named=True) == explicit
    assert lookup(tmp_path, environ, named=True) == candidates["environ"]
    del environ["PLANTD_IDENTITY"]
    assert lookup(tmp_path, environ, named=True) == candidates["config"]
    assert lookup(tmp_path, environ) == candidates["xdg"]
    del environ["XDG_CONFIG_HOME"]
    assert lookup(tmp_path, environ) == candidates["home"]
    candidates["home"].unlink()
    assert lookup(tmp_path, environ) == candidates["secrets"]


def test_an_empty_plantd_identity_is_not_a_choice(
    tmp_path: Path, candidates: dict[str, Path]
) -> None:
    environ = {"PLANTD_IDENTITY": "", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert lookup(tmp_path, environ) == candidates["xdg"]


def test_the_user_identity_knows_the_brokers_key(
    tmp_path: Path, candidates: dict[str, Path]
) -> None:
    config = write_config(tmp_path)
    broker = generate()
    keys = config.security.keys_dir(config.source_dir)
    write_key_file(keys / "broker.key", broker, secret=False)
    identity = user_identity(config, {}, candidates["explicit"])
    assert identity is not None
    assert identity.credentials().server == broker.public


def test_no_user_key_fails_when_needed_saying_where_it_looked(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    login = pwd.getpwuid(os.geteuid()).pw_name
    identity = user_identity(config, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert identity is not None  # nothing is read until a socket needs it
    with pytest.raises(SecurityError) as caught:
        identity.credentials()
    message = str(caught.value)
    assert str(tmp_path / "xdg" / "plantd" / "identity.key_secret") in message
    assert str(tmp_path / "data" / "secrets" / f"user.{login}.key_secret") in message
    assert "--identity FILE" in message
    assert "plant keys add user.NAME" in message


@pytest.mark.parametrize("where", ["explicit", "environ", "config"])
def test_a_named_key_that_is_missing_is_not_replaced_by_another(
    tmp_path: Path, candidates: dict[str, Path], where: str
) -> None:
    missing = tmp_path / "missing.key_secret"
    security = {"identity": str(missing)} if where == "config" else {}
    config = write_config(tmp_path, security=security)
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    if where == "environ":
        environ["PLANTD_IDENTITY"] = str(missing)
    identity = user_identity(config, environ, missing if where == "explicit" else None)
    assert identity is not None
    with pytest.raises(SecurityError, match="no identity for this user") as caught:
        identity.credentials()
    assert f"looked for a secret key at {missing})" in str(caught.value)


# -- secure() -------------------------------------------------------------------------------------


def test_secure_applies_explicit_credentials_then_the_process_identity_then_nothing(
    tmp_path: Path,
) -> None:
    server = tmp_path / "broker.key"
    broker = generate()
    write_key_file(server, broker, secret=False)
    mine = secret_file(tmp_path / "user.a.key_secret")
    other = generate()
    explicit = Credentials("user.b", other.public, other.secret or b"", b"S" * 40)

    plain = SimpleNamespace()
    assert secure(plain) is False
    assert vars(plain) == {}

    sock = SimpleNamespace()
    assert secure(sock, explicit) is True
    assert (sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey) == (
        other.public,
        other.secret,
        b"S" * 40,
    )

    use_identity(Identity(tmp_path / "user.a.key_secret", server))
    try:
        by_process = SimpleNamespace()
        assert secure(by_process) is True
        assert (by_process.curve_publickey, by_process.curve_serverkey) == (
            mine.public,
            broker.public,
        )
        preferred = SimpleNamespace()
        assert secure(preferred, explicit) is True
        assert preferred.curve_publickey == other.public
    finally:
        use_identity(None)
    assert secure(SimpleNamespace()) is False
