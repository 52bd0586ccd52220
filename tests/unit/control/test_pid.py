"""The PID against closed forms: a first-order process K/(τs+1) simulated exactly (zero-order
hold) with a small step, so the discrete result must match continuous theory closely."""

from __future__ import annotations

import math

import pytest

from plantd.control._pid import Pid, PidTuning

WIDE = {"output_min": -1e9, "output_max": 1e9}


class FirstOrder:
    """y' = (K·u - y)/τ, stepped exactly for a constant u over h."""

    def __init__(self, gain: float, tau: float, y: float = 0.0) -> None:
        self.gain, self.tau, self.y = gain, tau, y

    def step(self, u: float, h: float) -> float:
        a = math.exp(-h / self.tau)
        self.y = a * self.y + (1 - a) * self.gain * u
        return self.y


def run(pid: Pid, process: FirstOrder, seconds: float, h: float, t0: float = 0.0) -> list[tuple]:
    """(t, y, u) for each step: the controller sees y(t), the process holds u for h."""
    trace = []
    steps = round(seconds / h)
    for k in range(steps + 1):
        t = t0 + k * h
        u = pid.update(process.y, t)
        trace.append((t, process.y, u))
        process.step(u, h)
    return trace


@pytest.mark.parametrize(("kp", "gain"), [(4.0, 0.5), (1.0, 2.0), (9.0, 1.0)])
def test_p_only_leaves_the_steady_state_error_of_theory(kp: float, gain: float) -> None:
    pid = Pid(PidTuning(kp=kp, **WIDE), setpoint=1.0)
    process = FirstOrder(gain, tau=5.0)
    run(pid, process, seconds=100.0, h=0.01)
    assert 1.0 - process.y == pytest.approx(1 / (1 + kp * gain), abs=1e-6)


def test_pi_with_imc_tuning_gives_a_first_order_closed_loop_with_time_constant_lambda() -> None:
    gain, tau, lam = 2.0, 10.0, 5.0
    pid = Pid(PidTuning(kp=tau / (gain * lam), ti=tau, **WIDE), setpoint=1.0)
    trace = run(pid, FirstOrder(gain, tau), seconds=30.0, h=0.001)
    by_time = {round(t, 3): y for t, y, _ in trace}
    for t in (1.0, 2.5, 5.0, 10.0, 20.0, 30.0):
        assert by_time[t] == pytest.approx(1 - math.exp(-t / lam), abs=2e-3), t


def test_integral_action_alone_ramps_at_kp_over_ti_times_the_error() -> None:
    pid = Pid(PidTuning(kp=2.0, ti=10.0, **WIDE), setpoint=5.0)
    first = pid.update(4.0, 0.0)  # e = 1: P = 2, no integration on the first call
    assert first == pytest.approx(2.0)
    later = [pid.update(4.0, t) for t in (1.0, 2.0, 7.5)]
    assert later == pytest.approx([2.2, 2.4, 3.5])  # 2 + (2/10)·1·t
    direct = Pid(PidTuning(kp=2.0, ti=10.0, action="direct", **WIDE), setpoint=5.0)
    direct.update(4.0, 0.0)
    assert direct.update(4.0, 5.0) == pytest.approx(-3.0)  # e = pv - sp = -1


def test_derivative_acts_on_the_measurement_so_a_setpoint_step_gives_no_kick() -> None:
    pid = Pid(PidTuning(kp=2.0, td=5.0, **WIDE), setpoint=1.0)
    assert pid.update(1.0, 0.0) == 0.0
    assert pid.update(1.0, 0.1) == 0.0
    pid.setpoint = 3.0
    # Only P moves: 2·(3-1). Derivative on the error would add Kp·Td·N = 100 here.
    assert pid.update(1.0, 0.2) == pytest.approx(4.0)
    assert pid.update(1.0, 0.3) == pytest.approx(4.0)


def test_derivative_of_a_measurement_ramp_settles_at_minus_kp_td_rate() -> None:
    pid = Pid(PidTuning(kp=2.0, td=5.0, **WIDE), setpoint=0.0)
    rate, h = 0.1, 0.01
    outputs = [pid.update(rate * k * h, k * h) for k in range(2001)]
    t, pv = 20.0, rate * 20.0
    # Reverse action: u = Kp·(sp - pv) - Kp·Td·d(pv)/dt once the Td/N filter has settled.
    assert outputs[-1] == pytest.approx(2.0 * (0 - pv) - 2.0 * 5.0 * rate, abs=1e-6), t


class NaivePi:
    """A PI whose integral keeps winding while the output is clamped (for comparison)."""

    def __init__(self, kp: float, ti: float, lo: float, hi: float, sp: float) -> None:
        self.kp, self.ti, self.lo, self.hi, self.sp = kp, ti, lo, hi, sp
        self.integral = 0.0

    def update(self, pv: float, h: float) -> float:
        error = self.sp - pv
        self.integral += self.kp * h / self.ti * error
        return min(self.hi, max(self.lo, self.kp * error + self.integral))


def test_anti_windup_leaves_the_limit_as_soon_as_the_error_changes_sign() -> None:
    h, sp, hi = 0.01, 1.0, 1.2
    # Ti = τ: without limits this loop would not overshoot at all.
    pid = Pid(PidTuning(kp=2.0, ti=10.0, output_min=0.0, output_max=hi), setpoint=sp)
    naive = NaivePi(2.0, 10.0, 0.0, hi, sp)
    ours, theirs = FirstOrder(1.0, 10.0), FirstOrder(1.0, 10.0)
    ours_at_limit_after_sign_change = 0
    naive_at_limit_after_sign_change = 0
    ours_peak = theirs_peak = 0.0
    for k in range(int(120 / h)):
        u = pid.update(ours.y, k * h)
        if ours.y > sp and u >= hi:
            ours_at_limit_after_sign_change += 1
        v = naive.update(theirs.y, h)
        if theirs.y > sp and v >= hi:
            naive_at_limit_after_sign_change += 1
        ours_peak = max(ours_peak, ours.step(u, h))
        theirs_peak = max(theirs_peak, theirs.step(v, h))
    assert ours_at_limit_after_sign_change == 0
    assert naive_at_limit_after_sign_change * h > 1.0  # the naive one stays clamped for seconds
    assert ours_peak - sp < 1e-3
    assert theirs_peak - sp > 0.05
    assert ours.y == pytest.approx(sp, abs=1e-3)  # and the integral still removes the offset


def test_the_integral_does_not_build_up_while_clamped_low_either() -> None:
    pid = Pid(PidTuning(kp=1.0, ti=1.0, output_min=0.0, output_max=10.0), setpoint=0.0)
    for t in range(100):
        assert pid.update(5.0, float(t)) == 0.0  # e = -5, clamped low for 100 s
    assert pid.integral == 0.0
    assert pid.update(-1.0, 100.0) > 0.0  # error turns positive: off the limit at once


def test_manual_to_auto_is_bumpless_and_continues_smoothly() -> None:
    pid = Pid(PidTuning(kp=3.0, ti=5.0, td=1.0), setpoint=2.0)
    for t in range(5):
        pid.track(42.0, 1.5, float(t))  # manual at 42 %, pv 1.5
    assert pid.update(1.6, 5.0) == pytest.approx(42.0)
    nxt = pid.update(1.6, 6.0)
    assert nxt == pytest.approx(42.0 + 3.0 / 5.0 * 0.4, abs=0.5)
    assert abs(nxt - 42.0) < 1.0


def test_bumpless_for_a_p_only_controller_sets_its_bias() -> None:
    pid = Pid(PidTuning(kp=2.0), setpoint=2.0, output=30.0)
    assert pid.update(1.0, 0.0) == pytest.approx(30.0)
    assert pid.update(1.5, 1.0) == pytest.approx(29.0)  # bias 28 + 2·(2 - 1.5)


def test_setpoint_ramp_moves_the_working_setpoint_at_its_rate() -> None:
    pid = Pid(PidTuning(kp=1.0, setpoint_ramp=0.5, **WIDE), setpoint=0.0)
    pid.update(0.0, 0.0)
    pid.setpoint = 10.0
    seen = {t: (pid.update(0.0, float(t)), pid.working_setpoint)[1] for t in range(1, 25)}
    assert seen[4] == pytest.approx(2.0)
    assert seen[10] == pytest.approx(5.0)
    assert seen[20] == seen[24] == 10.0
    assert pid.setpoint == 10.0
    pid.setpoint = 9.0
    assert (pid.update(0.0, 25.0), pid.working_setpoint)[1] == pytest.approx(9.5)


def test_no_ramp_means_the_setpoint_steps() -> None:
    pid = Pid(PidTuning(kp=1.0), setpoint=0.0)
    pid.setpoint = 7.0
    assert pid.update(0.0, 0.0) == 7.0
    assert pid.working_setpoint == 7.0


def test_time_that_does_not_advance_integrates_nothing() -> None:
    pid = Pid(PidTuning(kp=1.0, ti=1.0, **WIDE), setpoint=1.0)
    pid.update(0.0, 10.0)
    pid.update(0.0, 11.0)
    integral = pid.integral
    assert pid.update(0.0, 11.0) == pytest.approx(1.0 + integral)  # same now again
    assert pid.update(0.0, 9.0) == pytest.approx(1.0 + integral)  # clock went back
    assert pid.integral == integral
    pid.update(0.0, 12.0)
    assert pid.integral == pytest.approx(integral + 1.0)  # counted from 11, not from 9


def test_a_long_gap_counts_as_max_dt_and_restarts_the_derivative() -> None:
    pid = Pid(PidTuning(kp=1.0, ti=1.0, td=1.0, **WIDE), setpoint=1.0, max_dt=2.0)
    pid.update(0.0, 0.0)
    pid.update(0.0, 1.0)
    before = pid.integral
    pid.update(0.5, 3601.0)  # an hour later, pv moved by 0.5
    assert pid.integral == pytest.approx(before + 2.0 * 0.5)
    assert pid.derivative == 0.0


def test_tuning_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="kp"):
        PidTuning(kp=0.0)
    with pytest.raises(ValueError, match="output_min"):
        PidTuning(kp=1.0, output_min=5.0, output_max=5.0)
