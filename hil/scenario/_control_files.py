"""A scenario's ``stack.control`` files: which directory each goes to, and the plan they make.

Each file is an ``alarms.d/``, ``calc.d/`` or ``control.d/`` file of plantd-control, told apart
by its top-level keys: ``alarms`` → ``alarms.d``, ``calc`` → ``calc.d``, ``loops`` and/or
``interlocks`` → ``control.d``. A file with keys of two kinds (or none of them) is refused, as
plantd-control would refuse it in any one directory.

The files are checked with plantd-control's own loader (:func:`plantd.control.load_plan`), so a
scenario is refused for exactly what would stop the process, and with the cross-file rules
(unique names, ``calc.NAME`` that exists, points of the scenario's modules): the loader reads a
directory, so the files are linked into a temporary one (``NN-NAME.yaml``, in the order given)
and every problem is told with the scenario's own file names. The stack gets copies under the
same names (:func:`install_control_files`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantd.config import read_yaml
from plantd.control import ALARMS_DIR, CALC_DIR, CONTROL_DIR, ControlPlan, load_plan
from plantd.errors import ConfigError

__all__ = ["ControlFiles", "control_kind", "install_control_files", "load_control_files"]

_KINDS = {"alarms": ALARMS_DIR, "calc": CALC_DIR, "loops": CONTROL_DIR, "interlocks": CONTROL_DIR}


@dataclass(frozen=True)
class ControlFiles:
    """The files of ``stack.control``, where each goes, and the plan they make."""

    placed: tuple[tuple[Path, str], ...]
    """(file, ``DIR/NN-NAME.yaml`` in the stack's config directory), in the order given."""
    plan: ControlPlan

    @property
    def alarms(self) -> frozenset[str]:
        return frozenset(alarm.name for alarm in self.plan.alarms)

    @property
    def calcs(self) -> frozenset[str]:
        return frozenset(calc.name for calc in self.plan.calcs)

    @property
    def loops(self) -> frozenset[str]:
        return frozenset(loop.name for loop in self.plan.loops)

    @property
    def interlocks(self) -> frozenset[str]:
        return frozenset(interlock.name for interlock in self.plan.interlocks)


def control_kind(path: Path) -> tuple[str | None, list[str]]:
    """(``alarms.d``, ``calc.d`` or ``control.d`` for ``path``; problems, if it is none)."""
    if not path.is_file():
        return None, [f"{path}: no such file"]
    document = read_yaml(path)
    if document.problems:
        return None, list(document.problems)
    data = document.data
    keys = [str(key) for key in data] if isinstance(data, dict) else []
    kinds = sorted({_KINDS[key] for key in keys if key in _KINDS})
    if len(kinds) == 1:
        return kinds[0], []
    if not kinds:
        return None, [
            f"{path}: not a plantd-control file: expected a top-level alarms, calc, loops or "
            f"interlocks key (found: {', '.join(keys) or 'none'})"
        ]
    return None, [
        f"{path}: holds keys of {' and '.join(kinds)} files; put each kind in a file of its own"
    ]


def load_control_files(
    files: Sequence[Path], modules: Mapping[str, Collection[str]] | None
) -> ControlFiles:
    """Place and check ``files``; :class:`ConfigError` lists every problem (file, line).

    ``modules`` (module name → point names): the points the plan may read and write besides
    ``calc.*``; None when the modules are not known here (a stack from elsewhere)."""
    problems: list[str] = []
    placed: list[tuple[Path, str]] = []
    for index, path in enumerate(files):
        kind, found = control_kind(path)
        problems.extend(found)
        if kind is not None:
            placed.append((path, f"{kind}/{index:02d}-{path.stem}.yaml"))
    if problems:
        raise ConfigError(problems)
    with tempfile.TemporaryDirectory(prefix="plantd-hil-control-") as temp:
        where = Path(temp)
        for path, name in placed:
            (where / name).parent.mkdir(exist_ok=True)
            (where / name).symlink_to(path.resolve())
        try:
            plan = load_plan(where, modules=modules)
        except ConfigError as exc:
            raise ConfigError(
                [_renamed(problem, where, placed) for problem in exc.problems]
            ) from None
    return ControlFiles(tuple(placed), plan)


def _renamed(problem: str, where: Path, placed: Sequence[tuple[Path, str]]) -> str:
    for path, name in placed:
        problem = problem.replace(str(where / name), str(path))
    return problem


def install_control_files(files: ControlFiles, config_dir: Path) -> list[Path]:
    """Copy the files into ``config_dir`` (its ``alarms.d/``, ``calc.d/``, ``control.d/``)."""
    written = []
    for path, name in files.placed:
        target = config_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written
