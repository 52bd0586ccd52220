"""What a scenario run produced: one result per step, the trace, the processes' logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hil.scenario._trace import Trace

__all__ = ["ScenarioResult", "Status", "StepResult"]

Status = Literal["passed", "failed", "error", "skipped"]
"""``failed``: an expectation was not met; ``error``: an action could not be done (a write
refused, a fault that does not fit); ``skipped``: not run, after an earlier failure."""


@dataclass
class StepResult:
    index: int
    action: str
    description: str
    t: float
    """Seconds from the first step to this one's start."""
    duration: float = 0.0
    status: Status = "passed"
    message: str = ""


@dataclass
class ScenarioResult:
    name: str
    source: Path | None
    started: float
    """Unix time the scenario started."""
    duration: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    setup_error: str | None = None
    """Why the rig could not be set up (no step ran), or why the scenario was cut short."""
    trace: Trace = field(default_factory=Trace)
    logs: dict[str, str] = field(default_factory=dict)
    """The last lines of each plantd process's log (broker, state, module-NAME)."""
    artifacts: list[Path] = field(default_factory=list)
    """Files written about the run (trace CSV/HTML, JUnit XML), if any."""

    @property
    def passed(self) -> bool:
        return self.setup_error is None and all(step.status == "passed" for step in self.steps)

    @property
    def expectations(self) -> list[StepResult]:
        return [step for step in self.steps if step.action == "expect"]

    def failures(self) -> list[StepResult]:
        return [step for step in self.steps if step.status in ("failed", "error")]

    def report(self) -> str:
        """The summary, the files written, and (on a failure) the end of each process's log:
        what an assertion message should carry (``assert result.passed, result.report()``)."""
        from hil.scenario._report import summary

        text = summary(self)
        if self.artifacts:
            text += "\nwritten: " + ", ".join(str(path) for path in self.artifacts)
        if not self.passed:
            text += "".join(f"\n--- {name} ---\n{log}" for name, log in self.logs.items())
        return text
