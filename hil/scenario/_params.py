"""Parametrised scenario files: one file, one scenario per case of its ``parameters``.

    parameters:                     # a list of cases…
      - {device: plc, unit: 1}
      - {device: meter, unit: 1}
    parameters:                     # …or a matrix: every combination, in order
      unit: [1, 2, 3]
      fault: [silent, garbage]
    steps:
      - inject: {device: field, unit: "{unit}", fault: "{fault}"}

``{name}`` in any text of the file is replaced by the case's value; a text that is nothing but
``{name}`` becomes the value itself (a number stays a number). Unquoted, YAML reads
``unit: {unit}`` as a mapping ``{unit: null}``: that is taken as the placeholder too. Each case is
named ``NAME[value-value]`` (unless ``name`` has a placeholder of its own), so it is a scenario,
a result and a JUnit suite of its own.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from plantd.config import KeyPath, did_you_mean

__all__ = [
    "PARAMETERS",
    "case_label",
    "case_name",
    "has_placeholder",
    "parameter_cases",
    "placeholder_problems",
    "substitute",
]

PARAMETERS = "parameters"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")  # names become file names (traces)

Case = dict[str, Any]


def parameter_cases(spec: object) -> tuple[list[Case], list[tuple[KeyPath, str]]]:
    """The cases ``parameters`` gives, or the problems with it (key paths from the top)."""
    at: KeyPath = (PARAMETERS,)
    if isinstance(spec, list):
        return _listed(spec)
    if isinstance(spec, dict):
        return _matrix(spec)
    shape = "a list of cases ([{device: plc}, …]) or a matrix ({unit: [1, 2]})"
    return [], [(at, f"expected {shape}, got {_kind(spec)}")]


def _listed(spec: list[object]) -> tuple[list[Case], list[tuple[KeyPath, str]]]:
    problems: list[tuple[KeyPath, str]] = []
    if not spec:
        return [], [((PARAMETERS,), "expected at least one case, got an empty list")]
    cases: list[Case] = []
    for index, case in enumerate(spec):
        at: KeyPath = (PARAMETERS, index)
        if not isinstance(case, dict) or not case:
            problems.append(
                (at, f"expected a case: a mapping of names to values, got {_kind(case)}")
            )
            continue
        problems.extend(_values(case, at))
        cases.append(case)
    if not problems:
        names = list(cases[0])
        for index, case in enumerate(cases[1:], start=1):
            if set(case) != set(names):
                missing = sorted(set(names) - set(case))
                extra = sorted(set(case) - set(names))
                what = "; ".join(
                    part
                    for part in (
                        f"no value for {', '.join(missing)}" if missing else "",
                        f"{', '.join(extra)} not in the first case" if extra else "",
                    )
                    if part
                )
                problems.append(
                    ((PARAMETERS, index), f"every case gives {', '.join(names)}: {what}")
                )
    return cases, problems


def _matrix(spec: dict[object, object]) -> tuple[list[Case], list[tuple[KeyPath, str]]]:
    problems: list[tuple[KeyPath, str]] = []
    if not spec:
        return [], [((PARAMETERS,), "expected at least one parameter, got an empty mapping")]
    for name, values in spec.items():
        at: KeyPath = (PARAMETERS, str(name))
        if not isinstance(values, list):
            problems.append((at, f"expected a list of values, got {_kind(values)}"))
        elif not values:
            problems.append((at, "expected at least one value, got an empty list"))
        elif not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append((at, f"a parameter name is letters, digits and '_', got {name!r}"))
        else:
            for index, value in enumerate(values):
                if not _scalar(value):
                    problems.append(((*at, index), f"expected a value, got {_kind(value)}"))
    if problems:
        return [], problems
    names = [str(name) for name in spec]
    combos = itertools.product(*(spec[name] for name in spec))  # type: ignore[call-overload]
    return [dict(zip(names, combo, strict=True)) for combo in combos], []


def _values(case: dict[Any, Any], at: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    for name, value in case.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            yield (*at, str(name)), f"a parameter name is letters, digits and '_', got {name!r}"
        elif not _scalar(value):
            yield (*at, name), f"expected a value (text, number, true/false), got {_kind(value)}"


def placeholder_problems(data: object, names: Iterable[str]) -> Iterator[tuple[KeyPath, str]]:
    """Placeholders with no parameter, and parameters no placeholder uses."""
    known = list(names)
    used: set[str] = set()
    for path, name in _placeholders(data, set(known), ()):
        used.add(name)
        if name not in known:
            yield (
                path,
                f"no parameter {name!r} for {{{name}}}{did_you_mean(name, known)}"
                + (f" (parameters: {', '.join(known)})"),
            )
    for name in known:
        if name not in used:
            yield (PARAMETERS,), f"parameter {name!r} is not used: write {{{name}}} where it goes"


def _placeholders(data: object, known: set[str], path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(data, str):
        for match in _PLACEHOLDER.finditer(data):
            yield path, match.group(1)
    elif _bare(data, known) is not None:
        yield path, str(_bare(data, known))
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _placeholders(value, known, (*path, str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _placeholders(value, known, (*path, index))


def _bare(data: object, known: set[str]) -> str | None:
    """``{unit}`` unquoted, as YAML reads it: ``{"unit": None}``."""
    if isinstance(data, dict) and len(data) == 1:
        ((key, value),) = data.items()
        if value is None and key in known:
            return str(key)
    return None


def substitute(data: Any, case: Mapping[str, Any]) -> Any:
    """``data`` with every placeholder replaced by its value in ``case``."""
    if isinstance(data, str):
        whole = _PLACEHOLDER.fullmatch(data)
        if whole is not None and whole.group(1) in case:
            return case[whole.group(1)]
        return _PLACEHOLDER.sub(
            lambda m: text(case[m.group(1)]) if m.group(1) in case else m.group(0), data
        )
    bare = _bare(data, set(case))
    if bare is not None:
        return case[bare]
    if isinstance(data, dict):
        return {key: substitute(value, case) for key, value in data.items()}
    if isinstance(data, list):
        return [substitute(value, case) for value in data]
    return data


def has_placeholder(value: object) -> bool:
    return isinstance(value, str) and _PLACEHOLDER.search(value) is not None


def case_name(base: str, case: Mapping[str, Any]) -> str:
    """``dead-unit`` and ``{unit: 2, fault: silent}`` → ``dead-unit[2-silent]``."""
    return f"{base}[{_UNSAFE.sub('_', '-'.join(text(v) for v in case.values()))}]"


def case_label(case: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={text(value)}" for name, value in case.items())


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return "an empty mapping" if not value else "a mapping"
    return "nothing" if value is None else repr(value)
