"""The device's TLS certificate (plantd.security._tls): what it holds, where it goes, that it
is kept, and that a TLS client that trusts it can connect by every name it is for."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from plantd.security import KeySet, ensure_device_certificate
from plantd.security._tls import device_names, init_device_certificate
from tests.unit.security._keys import write_config

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "keys", tmp_path / "secrets"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_self_signed_p256_certificate_for_the_device_names(dirs: tuple[Path, Path]) -> None:
    keys, secrets = dirs
    made = ensure_device_certificate(keys, secrets, ["plant-7", "plant-7.local"], now=NOW)
    assert made.made
    assert made.certificate == keys / "tls" / "device.crt"
    assert made.key == secrets / "device.tls_key"
    assert made.names == ("plant-7", "plant-7.local", "localhost", "127.0.0.1", "::1")
    assert mode(made.key) == 0o600
    assert mode(made.certificate) == 0o644
    cert = load(made.certificate)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)  # self-signed
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["plant-7", "plant-7.local", "localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert cert.not_valid_before_utc == NOW - dt.timedelta(days=1)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=3652)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert b"PRIVATE KEY" in made.key.read_bytes()
    assert b"PRIVATE" not in made.certificate.read_bytes()


def test_the_certificate_folder_is_readable_whatever_the_umask(dirs: tuple[Path, Path]) -> None:
    """plantd-keys runs with UMask=0077; the proxy, another user, must reach the certificate."""
    keys, secrets = dirs
    previous = os.umask(0o077)
    try:
        made = ensure_device_certificate(keys, secrets, ["plant-7"], now=NOW)
    finally:
        os.umask(previous)
    assert mode(made.certificate.parent) == 0o755
    assert mode(made.certificate) == 0o644


def test_the_default_names_are_the_hostname_its_mdns_name_and_loopback() -> None:
    assert device_names("plant-7") == ["plant-7", "plant-7.local", "localhost", "127.0.0.1", "::1"]
    assert device_names("pi.example.com") == [
        "pi.example.com",
        "pi.local",
        "localhost",
        "127.0.0.1",
        "::1",
    ]
    assert device_names("localhost") == ["localhost", "127.0.0.1", "::1"]
    assert device_names()[0] == socket.gethostname()


def test_a_clock_that_was_never_set_still_gives_ten_years(dirs: tuple[Path, Path]) -> None:
    keys, secrets = dirs
    unset = dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC)  # a Pi before NTP, no clock battery
    made = ensure_device_certificate(keys, secrets, ["plant-7"], now=unset)
    assert load(made.certificate).not_valid_after_utc.year >= 2035


def test_a_certificate_that_exists_is_kept(dirs: tuple[Path, Path]) -> None:
    keys, secrets = dirs
    first = ensure_device_certificate(keys, secrets, ["plant-7"], now=NOW)
    before = (first.certificate.read_bytes(), first.key.read_bytes())
    again = ensure_device_certificate(keys, secrets, ["other-name"], now=NOW)
    assert not again.made
    assert again.names == first.names
    assert (again.certificate.read_bytes(), again.key.read_bytes()) == before


@pytest.mark.parametrize("damage", ["expired", "no key", "other key", "garbage"])
def test_a_certificate_that_cannot_serve_is_made_again(
    dirs: tuple[Path, Path], damage: str
) -> None:
    keys, secrets = dirs
    first = ensure_device_certificate(keys, secrets, ["plant-7"], now=NOW)
    now = NOW
    if damage == "expired":
        now = NOW + dt.timedelta(days=3653)
    elif damage == "no key":
        first.key.unlink()
    elif damage == "other key":
        elsewhere = ensure_device_certificate(keys / "x", secrets / "x", ["x"], now=NOW)
        first.key.write_bytes(elsewhere.key.read_bytes())
    else:
        first.certificate.write_text("not a certificate")
    again = ensure_device_certificate(keys, secrets, ["plant-7"], now=now)
    assert again.made
    assert load(again.certificate).not_valid_after_utc > now
    assert mode(again.key) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_the_key_goes_to_the_owner(dirs: tuple[Path, Path]) -> None:
    keys, secrets = dirs
    made = ensure_device_certificate(keys, secrets, ["plant-7"], owner=(65534, 65534), now=NOW)
    assert (made.key.stat().st_uid, made.key.stat().st_gid) == (65534, 65534)
    assert made.certificate.stat().st_uid == 0


def serve_once(context: ssl.SSLContext, listener: socket.socket) -> threading.Thread:
    def run() -> None:
        connection, _ = listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError):
            pass  # the client refused us: its side of the test says so

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_a_client_that_trusts_it_connects_by_each_name(dirs: tuple[Path, Path], name: str) -> None:
    keys, secrets = dirs
    made = ensure_device_certificate(keys, secrets, ["plant-7"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(made.certificate, made.key)
    client = ssl.create_default_context(cafile=str(made.certificate))
    client.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default: RFC 5280 checks
    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = serve_once(server, listener)
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.recv(5) == b"hello"
        thread.join(10)


def test_a_client_refuses_it_by_a_name_it_is_not_for(dirs: tuple[Path, Path]) -> None:
    keys, secrets = dirs
    made = ensure_device_certificate(keys, secrets, ["plant-7"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(made.certificate, made.key)
    client = ssl.create_default_context(cafile=str(made.certificate))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = serve_once(server, listener)
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
        ):
            client.wrap_socket(raw, server_hostname="plant-8.local")
        thread.join(10)


# -- plant keys init ----------------------------------------------------------------------------


def test_keys_init_makes_it_once(tmp_path: Path) -> None:
    keyset = KeySet(write_config(tmp_path))
    done = keyset.init([], certificate=True)
    assert done[0] == "broker: new key pair"
    assert done[1].startswith("tls: new device certificate for ")
    assert done[1].endswith(f"({keyset.keys_dir / 'tls' / 'device.crt'})")
    assert (keyset.secrets_dir / "device.tls_key").exists()
    assert keyset.init([], certificate=True) == []
    assert keyset.init([]) == []


def test_keys_init_without_cryptography_says_it_skipped_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)  # as if it were not installed
    lines = init_device_certificate(tmp_path / "keys", tmp_path / "secrets")
    assert lines == [
        "tls: no device certificate made (the cryptography package is missing: "
        "install plantd[proxy])"
    ]
    assert not (tmp_path / "keys" / "tls").exists()
    keyset = KeySet(write_config(tmp_path))
    assert keyset.init([], certificate=True) == ["broker: new key pair", *lines]
