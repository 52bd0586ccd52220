"""Alarms, calculated points and control loops at the edge: the ``plantd-control`` process.

Three sans-IO engines, each tested on its own with explicit times, and one process that feeds
them from the bus (``_process``; see its theory of operation):

- **calculations** (``calc.d/``): safe expressions over points (our own parser; no Python
  ``eval``), windowed statistics, totalisers, counter rates, unit conversion, published as
  ``data.calc.NAME`` with the quality of their inputs (``_expr``, ``_calc``);
- **alarms** (``alarms.d/``): the ISA-18.2 / IEC 62682 life cycle — limit, rate-of-change,
  deviation, discrete and bad-quality alarms with deadbands and delays; acknowledgement,
  shelving, suppression, priorities; events on ``event.alarm.NAME``, current state and
  history in ``alarms.db`` (``_alarm``, ``_conditions``, ``_alarm_engine``, ``_alarm_store``);
- **loops and interlocks** (``control.d/``): PID with anti-windup, limits, bumpless transfer
  and setpoint ramping, and interlocks that hold an output at its safe value until reset,
  writing through the modules' ``write`` operation (``_pid``, ``_interlock``, ``_loops``).

Its services are ``org.plantd.Alarms`` and ``org.plantd.Control`` (``_service``); the user's
guide is ``docs/control.md``.
"""

from __future__ import annotations

from plantd.control._alarm import AlarmError, AlarmEvent, AlarmSnapshot
from plantd.control._alarm_config import AlarmConfig, AlarmsFile
from plantd.control._alarm_engine import AlarmEngine
from plantd.control._alarm_store import AlarmStore, AlarmStoreError
from plantd.control._calc import CalcEngine
from plantd.control._calc_config import CalcConfig, CalcFile
from plantd.control._expr import (
    Expression,
    ExpressionError,
    compile_expression,
    expression_problem,
)
from plantd.control._files import (
    ALARMS_DIR,
    CALC_DIR,
    CONTROL_DIR,
    ControlPlan,
    check_plan,
    load_plan,
)
from plantd.control._formula import Formula
from plantd.control._loop_config import ControlFile, InterlockConfig, LoopConfig
from plantd.control._loops import ControlError, LoopEngine, Write
from plantd.control._pid import Pid, PidTuning
from plantd.control._process import ControlProcess
from plantd.control._run import run_control
from plantd.control._service import (
    ALARMS_SERVICE,
    CONTROL_SERVICE,
    alarms_service,
    control_service,
)

__all__ = [
    "ALARMS_DIR",
    "ALARMS_SERVICE",
    "CALC_DIR",
    "CONTROL_DIR",
    "CONTROL_SERVICE",
    "AlarmConfig",
    "AlarmEngine",
    "AlarmError",
    "AlarmEvent",
    "AlarmSnapshot",
    "AlarmStore",
    "AlarmStoreError",
    "AlarmsFile",
    "CalcConfig",
    "CalcEngine",
    "CalcFile",
    "ControlError",
    "ControlFile",
    "ControlPlan",
    "ControlProcess",
    "Expression",
    "ExpressionError",
    "Formula",
    "InterlockConfig",
    "LoopConfig",
    "LoopEngine",
    "Pid",
    "PidTuning",
    "Write",
    "alarms_service",
    "check_plan",
    "compile_expression",
    "control_service",
    "expression_problem",
    "load_plan",
    "run_control",
]
