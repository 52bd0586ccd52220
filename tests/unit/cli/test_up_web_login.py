"""``plant up`` gives the stack's admin a web password the first time, shown once; never a
default one, and never again once one is set."""

from __future__ import annotations

import re
from pathlib import Path

from plantd.cli._up_cmd import _web_login
from plantd.clock import SYSTEM_CLOCK
from plantd.config import load_config
from plantd.proxy._accounts import Accounts
from plantd.testing import write_config


def test_the_first_run_makes_a_password_that_logs_in_and_later_runs_keep_it(
    tmp_path: Path,
) -> None:
    config = load_config(
        write_config(
            tmp_path / "etc",
            {"paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")}},
        )
    )
    first = _web_login(config, "user.ada")
    match = re.search(r"log in as ada, password (\S+)", first)
    assert match, first
    assert "http://127.0.0.1:8080/" in first
    accounts = Accounts.from_config(config, SYSTEM_CLOCK)
    try:
        assert accounts.check_password("user.ada", match.group(1))
    finally:
        accounts.close()
    second = _web_login(config, "user.ada")
    assert "password" not in second
    assert "log in as ada" in second
    assert _web_login(config, "user.bob") != first  # each person a password of their own
