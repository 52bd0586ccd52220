"""The OPC UA simulator's address space and value behaviour, from YAML (sans-IO).

    endpoint: opc.tcp://127.0.0.1:4840/plantd/sim
    namespace: urn:plantd:sim            # the simulator's own namespace
    update_interval: 100ms               # how often moving values are recomputed
    security:
      policies: [None, Basic256Sha256_SignAndEncrypt]
      certificate: pki/server-cert.der   # generated (self-signed) when missing
      private_key: pki/server-key.pem
    users: {operator: secret}            # when set, anonymous sessions are refused
    objects:
      - name: Line1
        variables:
          - {name: Speed, type: Double, value: 0, writable: true}
          - {name: Temperature, type: Double, behaviour: sine, amplitude: 5, period: 10s}
          - {name: Count, type: UInt32, behaviour: counter}
        generate:                         # many variables at once (benchmarks)
          - {prefix: Tag, count: 5000, type: Double, behaviour: random_walk}
        methods:
          - {name: Add, action: sum, inputs: [Double, Double], outputs: [Double]}
          - {name: ResetCount, action: reset, target: Count}

Every variable of object ``O`` is node ``ns=<namespace>;s=O.Name`` with browse name
``<namespace>:Name`` below ``Objects/<namespace>:O``. :func:`value_at` says what a behaviour
gives at a time, so the server only writes values and tests can compute what to expect.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from plantd.config import Duration, Ge, Gt, parse_dataclass, read_yaml
from plantd.errors import ConfigError

__all__ = [
    "MethodModel",
    "ObjectModel",
    "SecurityModel",
    "SimulatorModel",
    "VariableModel",
    "load_model",
    "value_at",
]

TypeName = Literal[
    "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
    "Float", "Double", "String", "DateTime", "ByteString",
]  # fmt: skip
Behaviour = Literal["constant", "ramp", "sine", "counter", "random_walk", "toggle"]
Policy = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]


@dataclass(frozen=True, kw_only=True)
class VariableModel:
    name: str
    type: TypeName = "Double"
    value: float | int | bool | str = 0
    """The initial value (and the constant one)."""
    writable: bool = False
    behaviour: Behaviour = "constant"
    period: Annotated[float, Duration, Gt(0)] = 10.0
    amplitude: float = 1.0
    offset: float = 0.0
    step: float = 1.0
    """What a counter adds, and a random walk's largest step, per update."""


@dataclass(frozen=True, kw_only=True)
class GeneratedVariables:
    prefix: str
    count: Annotated[int, Ge(1)]
    type: TypeName = "Double"
    behaviour: Behaviour = "random_walk"
    writable: bool = False
    period: Annotated[float, Duration, Gt(0)] = 10.0
    amplitude: float = 1.0
    step: float = 1.0

    def variables(self) -> list[VariableModel]:
        return [
            VariableModel(
                name=f"{self.prefix}{i:05d}",
                type=self.type,
                writable=self.writable,
                behaviour=self.behaviour,
                period=self.period,
                amplitude=self.amplitude,
                step=self.step,
            )
            for i in range(self.count)
        ]


@dataclass(frozen=True, kw_only=True)
class MethodModel:
    name: str
    action: Literal["sum", "echo", "reset", "set", "fail"] = "echo"
    """``sum`` adds its inputs; ``echo`` answers them; ``reset`` sets ``target`` to 0;
    ``set`` sets ``target`` to the first input; ``fail`` answers BadInvalidState."""
    target: str | None = None
    inputs: tuple[TypeName, ...] = ()
    outputs: tuple[TypeName, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ObjectModel:
    name: str
    variables: tuple[VariableModel, ...] = ()
    generate: tuple[GeneratedVariables, ...] = ()
    methods: tuple[MethodModel, ...] = ()

    def all_variables(self) -> list[VariableModel]:
        return [*self.variables, *(v for g in self.generate for v in g.variables())]


@dataclass(frozen=True, kw_only=True)
class SecurityModel:
    policies: tuple[Policy, ...] = ("None",)
    certificate: Path | None = None
    private_key: Path | None = None
    trusted_clients: tuple[Path, ...] = ()
    """Client certificates accepted on secure endpoints (empty: any client certificate)."""


@dataclass(frozen=True, kw_only=True)
class SimulatorModel:
    endpoint: str = "opc.tcp://127.0.0.1:4840/plantd/sim"
    namespace: str = "urn:plantd:sim"
    name: str = "plantd OPC UA simulator"
    update_interval: Annotated[float, Duration, Gt(0)] = 0.1
    security: SecurityModel = field(default_factory=SecurityModel)
    users: dict[str, str] = field(default_factory=dict)
    objects: tuple[ObjectModel, ...] = ()


def load_model(path: Path) -> SimulatorModel:
    """Read and validate a simulator file; ConfigError names every problem with its line."""
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    return parse_dataclass(
        SimulatorModel, document.data, source=str(path), lines=document.lines, base_dir=path.parent
    )


def value_at(variable: VariableModel, t: float, previous: Any, rng: random.Random) -> Any:
    """The value of ``variable`` at ``t`` seconds after start (``previous``: its last value)."""
    kind = variable.behaviour
    if kind == "constant":
        return previous
    if kind == "ramp":
        return variable.offset + variable.amplitude * ((t % variable.period) / variable.period)
    if kind == "sine":
        return variable.offset + variable.amplitude * math.sin(2 * math.pi * t / variable.period)
    if kind == "counter":
        return previous + variable.step
    if kind == "toggle":
        return int(t / (variable.period / 2)) % 2 == 1
    return previous + rng.uniform(-variable.step, variable.step)  # random_walk
