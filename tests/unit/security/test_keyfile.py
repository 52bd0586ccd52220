"""Key files (plantd.security._keyfile): the ZPL certificate format, round trips, modes, errors."""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils import z85

from plantd.errors import SecurityError
from plantd.security import KeyFile, generate, read_key_file, write_key_file


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask after a test that changes it."""
    old = os.umask(0o022)
    os.umask(old)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def curve_file(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# -- round trips ----------------------------------------------------------------------------------


def test_public_file_round_trip_keeps_key_and_metadata(tmp_path: Path) -> None:
    key = generate({"principal": "user.alice", "roles": "operator,viewer"})
    path = tmp_path / "user.alice.key"
    write_key_file(path, key, secret=False, comment="plantd CURVE public key of user.alice")
    read = read_key_file(path)
    assert read == KeyFile(
        key.public, None, {"principal": "user.alice", "roles": "operator,viewer"}
    )
    text = path.read_text()
    assert text.startswith("#   plantd CURVE public key of user.alice\n")
    assert key.secret is not None
    assert key.secret.decode() not in text  # the public file never holds the secret half
    assert "secret-key" not in text


def test_secret_file_round_trip_holds_both_halves(tmp_path: Path) -> None:
    key = generate({"principal": "service.state"})
    path = tmp_path / "service.state.key_secret"
    write_key_file(path, key, secret=True)
    assert read_key_file(path) == key
    assert zmq.curve_public(read_key_file(path).secret or b"") == key.public


def test_writing_leaves_no_temporary_file(tmp_path: Path) -> None:
    key = generate()
    write_key_file(tmp_path / "a.key", key, secret=False)
    write_key_file(tmp_path / "a.key_secret", key, secret=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.key", "a.key_secret"]


def test_a_rewrite_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    write_key_file(path, generate({"roles": "admin"}), secret=False)
    second = generate()
    write_key_file(path, second, secret=False)
    assert read_key_file(path) == KeyFile(second.public, None, {})


def test_a_key_without_a_secret_half_cannot_be_written_as_secret(tmp_path: Path) -> None:
    public_only = KeyFile(generate().public)
    with pytest.raises(ValueError, match="no secret half"):
        write_key_file(tmp_path / "a.key_secret", public_only, secret=True)
    assert not (tmp_path / "a.key_secret").exists()


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077, 0o777])
def test_modes_are_0644_and_0600_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    os.umask(mask)
    key = generate()
    write_key_file(tmp_path / "a.key", key, secret=False)
    write_key_file(tmp_path / "a.key_secret", key, secret=True)
    assert mode(tmp_path / "a.key") == 0o644
    assert mode(tmp_path / "a.key_secret") == 0o600


@pytest.mark.usefixtures("umask")
def test_rewriting_a_loose_file_tightens_its_mode(tmp_path: Path) -> None:
    os.umask(0)
    path = tmp_path / "a.key_secret"
    path.write_text("old")
    path.chmod(0o666)
    write_key_file(path, generate(), secret=True)
    assert mode(path) == 0o600


# -- '#' in a key, comments, blank lines ----------------------------------------------------------


def test_a_z85_key_holding_a_hash_reads_back(tmp_path: Path) -> None:
    # 0x0130E4E0 is "0####" in Z85: a key that is all '#' after its first character.
    hashed = z85.encode(struct.pack(">8I", *[84 * 85**3 + 84 * 85**2 + 84 * 85 + 84] * 8))
    assert hashed.count(b"#") == 32
    path = tmp_path / "a.key"
    write_key_file(path, KeyFile(hashed, None, {"principal": "user.a"}), secret=False)
    assert read_key_file(path).public == hashed


def test_a_generated_pair_holding_a_hash_reads_back(tmp_path: Path) -> None:
    for _ in range(1000):  # about three pairs in five hold a '#'
        key = generate()
        assert key.secret is not None
        if b"#" in key.public + key.secret:
            break
    else:
        pytest.fail("libzmq made no key with a '#' in 1000 tries")
    path = tmp_path / "a.key_secret"
    write_key_file(path, key, secret=True)
    assert read_key_file(path) == key


def test_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    key = generate()
    path = curve_file(
        tmp_path / "a.key",
        "#   written by hand",
        "",
        "metadata",
        "    # an indented comment",
        '    principal = "user.a"',
        "",
        '    roles = "viewer"   ',
        "curve",
        "   \t",
        f'    public-key = "{key.public.decode()}"',
        "# the end",
    )
    assert read_key_file(path) == KeyFile(
        key.public, None, {"principal": "user.a", "roles": "viewer"}
    )


def test_czmq_style_files_with_tabs_and_spaces_around_equals(tmp_path: Path) -> None:
    key = generate()
    path = curve_file(
        tmp_path / "a.key_secret",
        "metadata",
        "curve",
        f'\tpublic-key =  "{key.public.decode()}"',
        f'\tsecret-key="{(key.secret or b"").decode()}"',
    )
    assert read_key_file(path) == KeyFile(key.public, key.secret, {})


def test_unknown_sections_are_kept_out_of_the_key(tmp_path: Path) -> None:
    key = generate()
    path = curve_file(
        tmp_path / "a.key",
        "other",
        '    public-key = "not a key at all"',
        "curve",
        f'    public-key = "{key.public.decode()}"',
    )
    assert read_key_file(path).public == key.public


# -- compatibility --------------------------------------------------------------------------------


def test_zmq_auth_load_certificate_reads_what_plantd_writes(tmp_path: Path) -> None:
    key = generate({"principal": "user.alice", "roles": "admin"})
    write_key_file(tmp_path / "a.key", key, secret=False)
    write_key_file(tmp_path / "a.key_secret", key, secret=True)
    assert zmq.auth.load_certificate(tmp_path / "a.key") == (key.public, None)
    assert zmq.auth.load_certificate(tmp_path / "a.key_secret") == (key.public, key.secret)


def test_plantd_reads_what_zmq_auth_writes(tmp_path: Path) -> None:
    public_path, secret_path = zmq.auth.create_certificates(tmp_path, "peer")
    public, secret = zmq.auth.load_certificate(secret_path)
    assert read_key_file(Path(public_path)) == KeyFile(public, None, {})
    assert read_key_file(Path(secret_path)) == KeyFile(public, secret, {})


# -- errors: each names the file (and the line where there is one) --------------------------------


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(SecurityError, match="cannot read the key file") as caught:
        read_key_file(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SecurityError, match="cannot read the key file") as caught:
        read_key_file(path)
    assert str(caught.value).startswith(f"{path}: ")


def _public(text: str) -> list[str]:
    return ["curve", f'    public-key = "{text}"']


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        "a" * 39,
        "a" * 41,
        "a" * 45,  # a multiple of five, but not a 32-byte key
        "a" * 35,
        "a" * 39 + "~",  # '~' is not in the Z85 alphabet
        "a" * 39 + "\\",
        "a" * 39 + ",",
        "a" * 20 + " " + "a" * 19,
    ],
    ids=["empty", "short", "39", "41", "45", "35", "tilde", "backslash", "comma", "space"],
)
def test_not_a_key_is_named(tmp_path: Path, text: str) -> None:
    path = curve_file(tmp_path / "a.key", *_public(text))
    with pytest.raises(SecurityError) as caught:
        read_key_file(path)
    assert str(caught.value) == (
        f"{path}: public-key is not a Z85-encoded CURVE key (40 characters)"
    )


def test_a_bad_secret_key_is_named(tmp_path: Path) -> None:
    key = generate()
    path = curve_file(
        tmp_path / "a.key_secret",
        *_public(key.public.decode()),
        '    secret-key = "' + "a" * 39 + '~"',
    )
    with pytest.raises(SecurityError) as caught:
        read_key_file(path)
    assert str(caught.value) == (
        f"{path}: secret-key is not a Z85-encoded CURVE key (40 characters)"
    )


def test_z85_characters_that_overflow_32_bits_are_not_a_key(tmp_path: Path) -> None:
    # "#####" is 85**5 - 1, more than four bytes hold: pyzmq's z85.decode raises struct.error.
    path = curve_file(tmp_path / "a.key", *_public("#" * 40))
    with pytest.raises(SecurityError, match="public-key is not a Z85-encoded CURVE key"):
        read_key_file(path)


def test_a_non_ascii_character_is_not_a_key(tmp_path: Path) -> None:
    public = generate().public.decode()
    path = curve_file(tmp_path / "a.key", *_public(public[:5] + "é" + public[6:]))
    with pytest.raises(SecurityError, match="public-key is not a Z85-encoded CURVE key"):
        read_key_file(path)


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["metadata", '    principal = "user.a"'],
        ["curve"],
        ["curve", '    secret-key = "' + "a" * 40 + '"'],
        ["metadata", '    public-key = "' + "a" * 40 + '"'],  # in the wrong section
    ],
    ids=["empty", "metadata-only", "empty-curve", "secret-only", "wrong-section"],
)
def test_a_missing_public_key_is_named(tmp_path: Path, lines: list[str]) -> None:
    path = curve_file(tmp_path / "a.key", *lines)
    with pytest.raises(SecurityError) as caught:
        read_key_file(path)
    assert str(caught.value) == f"{path}: no public-key in its curve section"


def test_a_secret_of_another_key_is_named(tmp_path: Path) -> None:
    mine, other = generate(), generate()
    path = tmp_path / "a.key_secret"
    write_key_file(path, KeyFile(mine.public, other.secret), secret=True)
    with pytest.raises(SecurityError) as caught:
        read_key_file(path)
    assert str(caught.value) == f"{path}: its secret-key does not belong to its public-key"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("    public-key: 'x'", "public-key: 'x'"),
        ("    public-key = unquoted", "public-key = unquoted"),
        ('    public key = "x"', 'public key = "x"'),
        ('    name = "a"b"', 'name = "a"b"'),
        ("    =", "="),
    ],
)
def test_a_line_that_is_not_name_equals_value_is_named_with_its_number(
    tmp_path: Path, line: str, shown: str
) -> None:
    key = generate()
    path = curve_file(
        tmp_path / "a.key",
        "# header",
        "curve",
        f'    public-key = "{key.public.decode()}"',
        line,
    )
    with pytest.raises(SecurityError) as caught:
        read_key_file(path)
    assert str(caught.value) == f'{path}:4: expected name = "value", got {shown!r}'


def test_a_line_that_is_not_a_section_name_is_named_with_its_number(tmp_path: Path) -> None:
    path = curve_file(tmp_path / "a.key", "metadata", "curve keys", '    x = "y"')
    with pytest.raises(SecurityError) as caught:
        read_key_file(path)
    assert str(caught.value) == f"{path}:2: expected a section name, got 'curve keys'"


# -- KeyFile.listed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "listed"),
    [
        ("operator", ("operator",)),
        ("viewer,operator", ("viewer", "operator")),
        (" viewer , , operator ,", ("viewer", "operator")),
        ("", ()),
        (" , ", ()),
    ],
)
def test_listed_splits_a_comma_separated_value(value: str, listed: tuple[str, ...]) -> None:
    assert KeyFile(b"", None, {"roles": value}).listed("roles") == listed


def test_listed_is_empty_when_the_value_is_absent() -> None:
    assert KeyFile(b"", None, {"roles": "admin"}).listed("serve") == ()


def test_generate_makes_a_matching_pair_with_a_copy_of_the_metadata() -> None:
    metadata = {"principal": "user.a"}
    key = generate(metadata)
    metadata["principal"] = "user.b"
    assert key.metadata == {"principal": "user.a"}
    assert zmq.curve_public(key.secret or b"") == key.public
    assert generate().public != generate().public
