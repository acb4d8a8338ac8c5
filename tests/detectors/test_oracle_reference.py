"""The reference detector of ``benchmarks/oracle.py``: what its statistics compute."""

from __future__ import annotations

import numpy as np
from scipy import stats

from benchmarks.oracle import (
    FROM,
    SCORE_FROM,
    WINDOW,
    SizeUnknown,
    _glr_alarms,
    alarms,
    evaluate,
    factors,
    false_rate,
    llr,
    summary,
    threshold,
)


def test_the_log_likelihood_ratio_is_the_count_distributions():
    rng = np.random.default_rng(3)
    mu = rng.uniform(1, 20, size=30)
    y = rng.poisson(mu * 1.3)[None, :].astype(float)
    f = factors("ramp", 2.0)
    got = llr(y, mu, 1.0, f)
    want = (stats.poisson.logpmf(y[0][:, None], f[None, :] * mu[:, None])
            - stats.poisson.logpmf(y[0][:, None], mu[:, None]))
    np.testing.assert_allclose(got[0], want, rtol=1e-10, atol=1e-10)
    phi = 2.0  # the benchmark's negative binomial: size mu / (phi - 1), p = 1 / phi
    got = llr(y, mu, phi, f)
    r0, r1 = mu[:, None] / (phi - 1), f[None, :] * mu[:, None] / (phi - 1)
    want = (stats.nbinom.logpmf(y[0][:, None], r1, 1 / phi)
            - stats.nbinom.logpmf(y[0][:, None], r0, 1 / phi))
    np.testing.assert_allclose(got[0], want, rtol=1e-9, atol=1e-9)


def test_a_ramp_grows_for_twelve_weeks_then_holds():
    f = factors("ramp", 3.0)
    assert f[0] == 1 + 2 / 12 and f[11] == 3.0 and f[-1] == 3.0
    assert np.all(np.diff(f[:12]) > 0)
    assert np.all(factors("step", 1.5) == 1.5)


def test_an_alarm_needs_the_window_sum_and_starts_afresh():
    # one series, a factor table where every start gives the same 1.0 a week
    table = np.ones((1, 10, WINDOW))
    # the sum over a start k weeks back is k + 1: h 3 is first reached at week 2; after
    # the alarm only later starts count, so the next alarm is three weeks on (week 5)
    assert alarms(table, 3.0)[0].tolist() == [2, 5, 8]
    # evidence older than the window is forgotten
    table = np.full((1, 2 * WINDOW, WINDOW), -1.0)
    table[0, :, 0] = 0.5  # only a start in the same week gains, and only 0.5
    assert alarms(table, 1.0)[0].size == 0


def _ratio(ys: float, ms: float) -> float:
    return ys * np.log(ys / ms) - (ys - ms) if ys > ms else 0.0


def _brute_force(y: np.ndarray, mu: np.ndarray, h: float, guard: float | None = None
                 ) -> list[int]:
    """The step ratio maximised over size and start, by loops; fresh after an alarm;
    with ``guard``, the same without the window's largest ``y - mu`` must reach
    ``guard * h`` for the same start."""
    out, start = [], 0
    for t in range(len(y)):
        hit = False
        for tau in range(max(start, t - WINDOW + 1), t + 1):
            yw, mw = y[tau : t + 1], mu[tau : t + 1]
            ok = _ratio(yw.sum(), mw.sum()) >= h
            if guard is not None:
                j = int(np.argmax(yw - mw))  # the first on a tie, as the running max keeps
                ok = ok and _ratio(yw.sum() - yw[j], mw.sum() - mw[j]) >= guard * h
            hit = hit or ok
        if hit:
            out.append(t)
            start = t + 1
    return out


def test_the_size_unknown_ratio_is_maximised_over_size_and_start():
    rng = np.random.default_rng(5)
    mu = np.full(80, 4.0)
    y = rng.poisson(np.where(np.arange(80) >= 40, 8.0, 4.0)).astype(float)
    got = _glr_alarms(SizeUnknown(y[None, :], mu[None, :], 1.0), 6.0)[0].tolist()
    assert got == _brute_force(y, mu, 6.0)
    assert got and got[0] >= 40  # the rise is found, after it starts
    # counts that never exceed their mean never alarm
    flat = np.full((1, 80), 4.0)
    assert _glr_alarms(SizeUnknown(flat, flat, 1.0), 0.01)[0].size == 0


def test_the_spike_guard_needs_more_than_one_week():
    mu = np.full((1, 60), 4.0)
    y = mu.copy()
    y[0, 30] = 40.0  # one week ten times the mean
    assert _glr_alarms(SizeUnknown(y, mu, 1.0), 6.0)[0].tolist() == [30]
    assert _glr_alarms(SizeUnknown(y, mu, 1.0, guard=0.7), 6.0)[0].size == 0
    rng = np.random.default_rng(11)
    y = rng.poisson(np.where(np.arange(60) >= 30, 9.0, 4.0)).astype(float)[None, :]
    got = _glr_alarms(SizeUnknown(y, mu, 1.0, guard=0.7), 6.0)[0].tolist()
    assert got == _brute_force(y[0], mu[0], 6.0, guard=0.7)
    assert got and got[0] > 30  # a lasting rise is found, from its second week on


def test_sizes_average_the_ratio_instead_of_maximising_it():
    rng = np.random.default_rng(13)
    mu = np.full(70, 5.0)
    y = rng.poisson(np.where(np.arange(70) >= 35, 8.0, 5.0)).astype(float)

    def by_loops(h: float, sizes: tuple[float, ...]) -> list[int]:
        out, start = [], 0
        for t in range(len(y)):
            best = -np.inf
            for tau in range(max(start, t - WINDOW + 1), t + 1):
                ys, ms = y[tau : t + 1].sum(), mu[tau : t + 1].sum()
                each = [ys * np.log(f) - (f - 1) * ms for f in sizes]
                best = max(best, np.log(np.mean(np.exp(each))))
            if best >= h:
                out.append(t)
                start = t + 1
        return out

    for sizes in ((1.5,), (1.5, 2.0)):
        got = _glr_alarms(SizeUnknown(y[None, :], mu[None, :], 1.0, sizes=sizes), 4.0)[0]
        assert got.tolist() == by_loops(4.0, sizes)
        assert got.size and got[0] >= 35


def test_the_threshold_holds_the_false_alert_rate():
    rng = np.random.default_rng(7)
    weeks = 260 - FROM
    mu = np.full((300, weeks), 3.0)
    null = SizeUnknown(rng.poisson(mu).astype(float), mu, 1.0)
    h = threshold(null, 0.05)
    assert false_rate(null, h) <= 0.05 < false_rate(null, h - 0.02)
    assert SCORE_FROM - FROM == 2 * WINDOW  # the statistic has a window's history first


def test_a_spike_limit_raises_the_threshold_until_spikes_stay_under_it():
    free = evaluate(5, 60, 40, [0.05], extra=True, size_known=False, guard=0.7)
    held = evaluate(5, 60, 40, [0.05], extra=True, size_known=False, guard=0.7,
                    max_spikes=0.02)
    for key, v in held.items():
        assert v["h"][0.05] >= free[key]["h"][0.05]
        if key[2] == "spike":
            read = np.mean([d is not None for d in v["delays"][0.05]])
            assert read <= 0.02
    assert summary(held, 0.05)["spikes_as_trends"] <= 0.02
