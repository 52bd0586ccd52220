"""What a scenario run produced: one result per step, the trace, the processes' logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hil.scenario._trace import Trace

__all__ = ["ScenarioResult", "Status", "StepResult"]

Status = Literal["passed", "failed", "error", "skipped"]
"""``failed``: an expectation was not met (a write with ``error:`` that was accepted is one);
``error``: an action could not be done (a write refused, a fault that does not fit, the scenario
out of time or the rig broken during the step); ``skipped``: not run, after an earlier failure."""


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
    """Why the rig could not be set up (no step ran)."""
    teardown_errors: list[str] = field(default_factory=list)
    """What went wrong after the steps: stopping the stack or the simulators, writing the
    trace. Each fails the scenario, though every step passed."""
    trace: Trace = field(default_factory=Trace)
    logs: dict[str, str] = field(default_factory=dict)
    """The last lines of each plantd process's log (broker, state, module-NAME)."""
    artifacts: list[Path] = field(default_factory=list)
    """Files written about the run (trace CSV/HTML, JUnit XML), if any."""

    @property
    def passed(self) -> bool:
        """True only if the rig was set up and torn down cleanly and every step that ran
        passed (steps are skipped only after a failure, so none was)."""
        return (
            self.setup_error is None
            and not self.teardown_errors
            and all(step.status == "passed" for step in self.steps)
        )

    @property
    def expectations(self) -> list[StepResult]:
        return [step for step in self.steps if step.action == "expect"]

    def failures(self) -> list[StepResult]:
        """The steps that failed or could not be done (expectations and actions alike)."""
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
