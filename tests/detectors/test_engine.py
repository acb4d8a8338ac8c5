import json
import math
from datetime import date

import numpy as np
import pytest

from detectors.base import Series
from detectors.engine import (
    NeedsReplay,
    SeriesState,
    _lr_counts,
    advance_many,
    detect,
    nb_sf,
    replay,
    replay_many,
    replay_with_state,
)
from detectors.episodes import EpisodeTracker
from detectors.params import DetectionParams

from .helpers import count_series, nb_counts, seasonal_mean, weeks

P = DetectionParams()


def kinds(findings, kind, direction="increase"):
    return [f for f in findings if f.kind == kind and f.direction == direction]


def test_upper_tail_agrees_with_scipy_stats():
    from scipy import stats

    # P(Y >= 5 | mu = 2) = 1 - e^-2 (1 + 2 + 2 + 4/3 + 2/3) = 1 - 7 e^-2
    assert nb_sf(5, 2.0, 2.0) == pytest.approx(1 - 7 * math.exp(-2), rel=1e-12)
    # negative binomial mean 4 variance 12: size 2, p 1/3
    assert nb_sf(3, 4.0, 12.0) == pytest.approx(stats.nbinom.sf(2, 2, 1 / 3), rel=1e-12)
    k = np.arange(0, 40)
    assert nb_sf(k, 7.5, 20.0) == pytest.approx(
        stats.nbinom.sf(k - 1, 7.5**2 / 12.5, 7.5 / 20.0), rel=1e-9, abs=1e-300
    )
    assert nb_sf(k, 7.5, 7.5) == pytest.approx(stats.poisson.sf(k - 1, 7.5), rel=1e-9)


def test_likelihood_ratio_by_hand():
    # 30 observed against 10 expected, dispersion 1: 30 ln 3 - 20
    assert _lr_counts(np.array(30.0), np.array(10.0), 1.0) == pytest.approx(30 * math.log(3) - 20)
    # overdispersion divides the evidence; no evidence at Y == E
    assert _lr_counts(np.array(30.0), np.array(10.0), 2.0) == pytest.approx(
        (30 * math.log(3) - 20) / 2
    )
    assert _lr_counts(np.array(10.0), np.array(10.0), 1.0) == 0.0
    # nothing observed against 4 expected: ratio 4 (a decrease)
    assert _lr_counts(np.array(0.0), np.array(4.0), 1.0) == pytest.approx(4.0)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 9])
def test_short_series_no_findings(n):
    s = count_series(np.arange(n, dtype=float))
    assert detect(s, P) == []
    assert replay(s, P) == [[] for _ in range(n)]


@pytest.mark.parametrize("value", [0.0, 3.0, 50.0])
@pytest.mark.parametrize("metric", ["count", "index"])
def test_constant_series_quiet(value, metric):
    s = count_series(np.full(150, value), metric=metric)
    assert all(r == [] for r in replay(s, P))


def test_nan_and_absent_periods_do_not_break():
    y = nb_counts(np.full(200, 6.0), seed=3)
    y[[20, 21, 22, 100]] = np.nan
    s = count_series(y)
    keep = [i for i in range(200) if i not in (50, 51, 52, 53)]
    gappy = Series(
        source="lab", substance="x", periods=tuple(s.periods[i] for i in keep), values=y[keep]
    )
    assert len(replay(gappy, P)) == len(keep)
    assert sum(len(kinds(r, "trend")) for r in replay(s, P)) == 0


def test_step_is_a_trend_with_onset_near_the_step():
    mu = seasonal_mean(230, 8.0)
    mu[200:] *= 3.0
    s = count_series(nb_counts(mu, seed=7))
    res = replay(s, P)
    assert not any(kinds(r, "trend") for r in res[120:200])
    first = next(i for i in range(200, 230) if kinds(res[i], "trend"))
    assert first <= 205  # this draw rises only x2 in its first two weeks
    f = kinds(res[first], "trend")[0]
    assert abs((f.onset - s.periods[200]).days) <= 21
    assert f.relative_change > 0.5 and f.category == 2 and f.p_value < 0.01
    assert f.detected_at == s.periods[first]
    # the same change keeps its onset (and key) while it stays current
    later = [kinds(r, "trend")[0] for r in res[first:230] if kinds(r, "trend")]
    assert {g.key for g in later} == {f.key}
    import json

    json.dumps(f.evidence)


def test_small_counts_step():
    mu = np.full(220, 2.0)
    mu[180:] = 6.0
    res = replay(count_series(nb_counts(mu, seed=11, size=50)), P)
    assert any(kinds(r, "trend") for r in res[180:200])
    assert not any(kinds(r, "trend") for r in res[60:180])


def test_spike_is_not_a_trend():
    mu = seasonal_mean(220, 10.0)
    y = nb_counts(mu, seed=5)
    y[200] = 90.0
    res = replay(count_series(y), P)
    assert kinds(res[200], "spike")
    assert not any(kinds(r, "trend") for r in res[195:220])


def test_drop_is_not_reported_as_increase():
    mu = np.full(220, 20.0)
    mu[190:] = 8.0
    res = replay(count_series(nb_counts(mu, seed=2)), P)
    downs = [f for r in res[190:] for f in r if f.direction == "decrease"]
    assert downs and all(f.category < 0 and f.relative_change < 0 for f in downs)
    assert not any(f.direction == "increase" for r in res[190:] for f in r)


def test_rate_with_denominators_tracks_positivity_not_volume():
    rng = np.random.default_rng(9)
    n = 200
    tests = rng.integers(50, 400, size=n).astype(float)
    tests[150:] *= 3  # many more tests, same positivity: no change
    pos = rng.binomial(tests.astype(int), 0.05).astype(float)
    s = count_series(pos, denominators=tests)
    assert not any(kinds(r, "trend") for r in replay(s, P)[140:])
    pos2 = pos.copy()
    pos2[170:] = rng.binomial(tests[170:].astype(int), 0.10)
    res = replay(count_series(pos2, denominators=tests), P)
    f = next(kinds(r, "trend")[0] for r in res[170:] if kinds(r, "trend"))
    assert 0.04 < f.level_before < 0.07 and f.level_after > 0.08


def test_index_series_trend_and_few_false_trends():
    detected, false = 0, 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        y = np.clip(np.round(40 + rng.normal(0, 4, 180)), 0, 100)
        y[150:] = np.clip(np.round(60 + rng.normal(0, 4, 30)), 0, 100)
        res = replay(count_series(y, metric="index"), P)
        false += any(kinds(r, "trend") for r in res[30:150])
        detected += any(kinds(r, "trend") for r in res[150:158])
    assert detected == 10
    # pure noise before week 150: fewer than 0.2 false trends per series-year
    # (10 series x 2.3 years); a detector that fires on noise fails this
    assert false <= 4


def test_replay_equals_detect_on_prefixes_and_no_look_ahead():
    mu = seasonal_mean(150, 5.0)
    mu[110:] *= 2.0
    y = nb_counts(mu, seed=21)
    y[60] = 40.0
    y[[30, 31]] = np.nan
    s = count_series(y)
    res = replay(s, P)
    for i in range(len(y)):
        assert res[i] == detect(s.upto(i + 1), P), i
    assert any(res)
    # appending other data changes nothing before it
    longer = count_series(np.concatenate([y, np.full(40, 100.0)]))
    assert replay(longer, P)[: len(y)] == res


def test_monthly_series_and_score_metric():
    per = tuple(date(2015 + i // 12, i % 12 + 1, 1) for i in range(96))
    mu = np.full(96, 30.0)
    mu[84:] = 80.0
    s = Series(source="police", substance="ketamine", periods=per, values=nb_counts(mu, seed=1))
    res = replay(s, P)
    assert any(kinds(r, "trend") for r in res[84:])
    panel = Series(
        source="panel", substance="ketamine", periods=per, values=np.full(96, 2.0), metric="score"
    )
    assert detect(panel, P) == []


def test_replay_matches_detect_when_the_period_step_changes():
    from datetime import timedelta

    # weekly for 30 periods, then daily: the inferred step of early prefixes differs
    per = [date(2024, 1, 1) + timedelta(weeks=i) for i in range(30)]
    per += [per[-1] + timedelta(days=i + 1) for i in range(30)]
    y = nb_counts(np.full(60, 5.0), seed=8)
    y[45:] += 20
    s = Series(source="lab", substance="x", periods=tuple(per), values=y)
    res = replay(s, P)
    assert [detect(s.upto(i + 1), P) for i in range(60)] == res


def test_all_zero_history_then_counts_is_a_spike_not_an_error():
    y = np.zeros(80)
    y[79] = 9.0
    res = detect(count_series(y), P)
    assert [f.kind for f in res] == ["spike"]
    assert res[0].level_before > 0 and np.isfinite(res[0].relative_change)


def test_daily_concentration_series():
    from datetime import timedelta

    rng = np.random.default_rng(13)
    n = 500
    per = tuple(date(2023, 1, 1) + timedelta(days=i) for i in range(n))
    y = 200 * np.exp(rng.normal(0, 0.1, n))
    y[470:] *= 1.8
    s = Series(
        source="wastewater", substance="cocaine", periods=per, values=y, metric="concentration"
    )
    res = replay(s, P)
    assert not any(kinds(r, "trend") for r in res[100:470])
    f = next(kinds(r, "trend")[0] for r in res[470:] if kinds(r, "trend"))
    assert f.method.startswith("log-linear") and 0.5 < f.relative_change < 1.2


def test_sparse_index_blips_are_not_spikes():
    rng = np.random.default_rng(17)
    y = np.where(rng.random(200) < 0.15, rng.integers(1, 4, 200), 0).astype(float)
    y[:20] = [0, 3, 0, 0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 3, 0, 0, 0, 2, 0]
    y[199] = 40.0
    res = replay(count_series(y, metric="index"), P)
    assert not any(kinds(r, "spike") for r in res[:199])
    assert kinds(res[199], "spike")


def test_empty_grid_baseline():
    from detectors.baseline import Layout, fit_points

    f = fit_points(np.zeros(0), np.zeros(0), Layout.of(52.18, P), P, family="counts")
    assert len(f.pos) == 0 and len(f.window_max) == 0


def test_shrunken_trend_carries_its_mean_squared_error():
    """The extrapolated trend's variance is the MSE of the shrunken estimate c*b,
    c^2 v + (1 - c)^2 b^2, not c^2 v: the shrinkage bias counts as baseline uncertainty."""
    from detectors.baseline import Layout, fit_points

    t = np.arange(260)
    y = np.random.default_rng(3).poisson(3 * np.exp(0.1 * t / 52.18)).astype(float)
    lay = Layout.of(52.18, P)
    rps = np.arange(120, 260, 4)
    raw = fit_points(y, rps, lay, P.merged({"trend_z": 0}), family="counts")
    shr = fit_points(y, rps, lay, P, family="counts")
    v = raw.scale * raw.ainv[:, 1, 1]
    z = raw.beta[:, 1] / np.sqrt(v)
    c = z**2 / (z**2 + P.trend_z**2)
    assert np.all(raw.trend_kept == 1.0)
    np.testing.assert_allclose(shr.trend_kept, c)
    np.testing.assert_allclose(shr.beta[:, 1], c * raw.beta[:, 1])
    np.testing.assert_allclose(shr.ainv[:, 1, 1], raw.ainv[:, 1, 1] * (c**2 + (1 - c) ** 2 * z**2))
    # at trend_z = 1 the MSE is c v: more than the variance c^2 v of c*b alone
    assert np.all(shr.ainv[:, 1, 1] > c**2 * raw.ainv[:, 1, 1])
    np.testing.assert_allclose(shr.ainv[:, 0, 1], c * raw.ainv[:, 0, 1])


def test_window_variance_is_the_delta_method_for_the_total():
    """The baseline's uncertainty for a window's expected total: one period gives the
    pointwise variance; a window's is that of its mean design row, so a seasonal
    term's error that cancels over half a year counts less than at any one week."""
    from detectors.baseline import Layout, fit_points, predict, window_var

    y = nb_counts(seasonal_mean(260, 5.0, 0.4), 8)
    lay = Layout.of(52.18, P)
    f = fit_points(y, np.array([200]), lay, P, family="counts")
    s = np.arange(200, 226)[None, :]
    rows = np.zeros_like(s)
    eta, var_eta, _, X = predict(f, rows, s, lay.per_year)
    w = np.exp(eta)
    tot = window_var(f, rows, X, w)
    assert tot[0, 0] == pytest.approx(var_eta[0, 0])
    xbar = (w[0, :, None] * X[0]).sum(0) / w[0].sum()
    assert tot[0, -1] == pytest.approx(f.scale[0] * xbar @ f.ainv[0] @ xbar)
    assert tot[0, -1] < var_eta[0].max()


def test_steady_growth_at_low_counts_raises_no_trend():
    """A real +25 %/year growth at 2-3 a week is the baseline, not an increase: the
    shrunken trend's bias is counted as uncertainty, so at most 3 of 30 series ever
    raise an increase in their last two years (7 when the bias was ignored)."""
    t = np.arange(260)
    raised = 0
    for seed in range(30):
        y = np.random.default_rng(100 + seed).poisson(2 * np.exp(0.25 * t / 52.18)).astype(float)
        res = replay(count_series(y), P)
        raised += any(kinds(r, "trend") for r in res[156:])
    assert raised <= 3


def _step_through(series, m0, params=P):
    _, state = replay_with_state(series.upto(m0), params)
    out = []
    for i in range(m0, len(series.periods)):
        state = SeriesState.from_dict(json.loads(json.dumps(state.to_dict())))
        den = None if series.denominators is None else float(series.denominators[i])
        out.append(state.advance(series.periods[i], float(series.values[i]), params, den))
    return out


def test_incremental_state_gives_the_replay_findings():
    rng = np.random.default_rng(9)
    mu = seasonal_mean(230, 8.0)
    mu[200:] *= 3.0
    y = nb_counts(mu, seed=7)
    y[150] = 60.0
    y[[160, 161]] = np.nan
    tests = rng.integers(50, 400, size=200).astype(float)
    pos = rng.binomial(tests.astype(int), 0.05).astype(float)
    pos[170:] = rng.binomial(tests[170:].astype(int), 0.1)
    idx = np.clip(np.round(40 + rng.normal(0, 4, 180)), 0, 100)
    idx[150:] += 20
    per = tuple(date(2015 + i // 12, i % 12 + 1, 1) for i in range(96))
    mu_m = np.full(96, 30.0)
    mu_m[84:] = 80.0
    cases = [
        (count_series(y), 100),
        (count_series(pos, denominators=tests), 120),
        (count_series(idx, metric="index"), 60),
        (Series(source="police", substance="k", periods=per, values=nb_counts(mu_m, seed=1)), 40),
    ]
    for series, m0 in cases:
        full = replay(series, P)
        assert _step_through(series, m0) == full[m0:]
        assert any(full[m0:])
    # the state is small: about the baseline window, not the whole history
    longer = count_series(nb_counts(np.full(800, 5.0), seed=2))
    _, state = replay_with_state(longer, P)
    assert len(state.to_dict()["y"]) < 330


def test_many_states_advanced_together_give_each_series_its_replay_findings():
    """advance_many (the daemon's batch step) equals replay and advance, period by
    period, for a mix of counts, positives with tests, indexes and monthly counts, with
    missing values, a skipped period, refits and alarms; a state that cannot take its
    period gets NeedsReplay in its place and is left unchanged."""
    rng = np.random.default_rng(21)
    series = []
    for i in range(24):
        mu = seasonal_mean(230, 3.0 + 4 * (i % 5))
        if i % 3 == 0:
            mu[205:] *= 2.5
        y = nb_counts(mu, seed=40 + i)
        if i % 4 == 1:
            y[rng.integers(0, 230, 12)] = np.nan
        if i % 6 == 2:
            tests = rng.integers(50, 400, size=230).astype(float)
            pos = rng.binomial(tests.astype(int), 0.05 + 0.05 * (np.arange(230) >= 210))
            series.append(count_series(pos.astype(float), denominators=tests))
        elif i % 6 == 4:
            series.append(count_series(np.clip(np.round(40 + rng.normal(0, 4, 230)), 0, 100)
                                       + 20 * (np.arange(230) >= 212), metric="index"))
        else:
            series.append(count_series(y))
    per = tuple(date(2012 + i // 12, i % 12 + 1, 1) for i in range(96))
    mu_m = np.full(96, 30.0)
    mu_m[84:] = 80.0
    series.append(Series(source="police", substance="k", periods=per,
                         values=nb_counts(mu_m, seed=1)))
    gap = count_series(nb_counts(np.full(230, 9.0), seed=3))
    keep = [i for i in range(230) if i != 205]  # one week never reported
    series.append(Series(source=gap.source, substance=gap.substance,
                         periods=tuple(gap.periods[i] for i in keep), values=gap.values[keep]))
    m0 = {id(s): len(s.periods) - 26 for s in series}
    full = [replay(s, P) for s in series]
    states = [replay_with_state(s.upto(m0[id(s)]), P)[1] for s in series]
    copies = [SeriesState.from_dict(json.loads(json.dumps(st.to_dict()))) for st in states]
    for r in range(26):
        items = []
        for s, st in zip(series, states, strict=True):
            i = m0[id(s)] + r
            den = None if s.denominators is None else float(s.denominators[i])
            items.append((st, s.periods[i], float(s.values[i]), den))
        got = advance_many(items, P)
        for k, (s, copy) in enumerate(zip(series, copies, strict=True)):
            i = m0[id(s)] + r
            den = None if s.denominators is None else float(s.denominators[i])
            one = copy.advance(s.periods[i], float(s.values[i]), P, den)
            assert got[k] == one == full[k][i], (k, i)
    assert sum(len(f) for f in full[0][-26:]) > 0 and any(any(f[-26:]) for f in full[1:])
    # the packed round trip keeps a batch-advanced state equal to the JSON one
    from warnd.statecodec import pack, unpack

    assert unpack(pack(states[0].to_store())) == json.loads(json.dumps(copies[0].to_dict()))
    # a period already seen, and other params: refused, the states untouched
    before = json.dumps(states[0].to_dict())
    bad = advance_many([(states[0], series[0].periods[-1], 1.0, None)], P)
    assert isinstance(bad[0], NeedsReplay) and json.dumps(states[0].to_dict()) == before
    nxt = series[0].periods[-1] + (series[0].periods[1] - series[0].periods[0])
    other = advance_many([(states[0], nxt, 1.0, None)], P.merged({"glr_h": 9}))
    assert isinstance(other[0], NeedsReplay) and json.dumps(states[0].to_dict()) == before


def test_the_batch_step_makes_change_time_tables_only_for_series_that_may_alarm(monkeypatch):
    """The batch step first screens each series at its new period (each fit's sums
    made once, summed from the end): a series whose statistics are clearly below the
    threshold, with no spike possible, is quiet and gets no change-time table. Every
    series with a run on or a spike is among the rest, the findings equal replay's,
    and most quiet weeks are screened out. Fails if the screen lets an alarm through
    (findings lost) or screens nothing out."""
    from detectors import engine

    built: list[int] = []
    loud: list[np.ndarray] = []
    real_core, real_screen = engine._table_core, engine._screen

    def counting(family, s, *a, **kw):
        built.append(len(s))
        return real_core(family, s, *a, **kw)

    def recording(*a, **kw):
        calm = real_screen(*a, **kw)
        loud.append(~calm)
        return calm

    rng = np.random.default_rng(8)
    series = []
    for i in range(36):
        mu = seasonal_mean(222, 2.0 + 3 * (i % 6))
        if i % 6 == 0:
            mu[202:] *= 3.0
        y = nb_counts(mu, seed=300 + i)
        if i % 9 == 4:
            y[rng.integers(0, 222, 15)] = np.nan
        if i % 9 == 7:
            series.append(count_series(np.round(50 * np.exp(rng.normal(0, 0.2, 222))
                                                * (1 + (np.arange(222) >= 206)), 1),
                                       metric="kg"))
        else:
            series.append(count_series(y))
    full = [replay(s, P) for s in series]
    states = [replay_with_state(s.upto(196), P)[1] for s in series]
    monkeypatch.setattr(engine, "_table_core", counting)
    monkeypatch.setattr(engine, "_screen", recording)
    M = engine._Geometry.of("week", P).M
    alarms = quiet_weeks = screened = 0
    for i in range(196, 222):
        built.clear()
        loud.clear()
        got = advance_many([(st, s.periods[i], float(s.values[i]), None)
                            for st, s in zip(states, series, strict=True)], P)
        flags = np.concatenate(loud)  # one batch a family (counts, then kg)
        order = [k for k, s in enumerate(series) if s.metric == "count"] + [
            k for k, s in enumerate(series) if s.metric == "kg"]
        was_loud = dict(zip(order, flags.tolist(), strict=True))
        assert sum(built) == M * int(flags.sum())  # a table for the loud ones only
        for k, (st, s) in enumerate(zip(states, series, strict=True)):
            assert got[k] == full[k][i], (k, i)
            run = st.d["run"]
            busy = bool(got[k]) or run["up"] or run["dn"]
            alarms += busy
            assert was_loud[k] or not busy, (k, i)
            if not busy:
                quiet_weeks += 1
                screened += not was_loud[k]
    assert alarms > 30 and quiet_weeks > 500
    assert screened > 0.9 * quiet_weeks, (screened, quiet_weeks)


def test_the_screens_bound_is_never_under_the_statistic():
    """The screen's first, cheap step (the ratio with the baseline's variance left out
    and the extreme period kept, over glr_h) is at least the statistic the table
    computes from the same sums, for counts (with and without a denominator's floor)
    and for other values, so a series calm by it is calm. Fails if the bound drops a
    term that can raise the statistic."""
    from detectors.engine import _glr, _screen_bound

    rng = np.random.default_rng(11)
    n = 20000
    N = rng.integers(0, 27, n).astype(float)
    E = N * rng.gamma(2.0, 5.0, n)
    Y = rng.poisson(E * rng.choice([0.3, 1.0, 1.5, 3.0], n)).astype(float)
    hi = (rng.random(n) * Y, rng.random(n) * E)
    lo = (rng.random(n) * Y, rng.random(n) * E)
    var_tot = rng.choice([0.0, 1e-4, 0.01, 0.3], n)
    elig = rng.random(n) < 0.9
    for family, kappa, sc in (("counts", 0.0, rng.uniform(1.0, 4.0, n)),
                              ("counts", 0.0025, rng.uniform(1.0, 4.0, n)),
                              ("values", 0.0, rng.uniform(0.05, 2.0, n))):
        y = Y if family == "counts" else rng.normal(0, 3, n) * np.sqrt(N)
        _, _, up, dn = _glr(family, y, E, N, sc, var_tot, hi, lo, elig, P, kappa)
        bound = _screen_bound(family, y, E, N, sc, elig, P, kappa)
        assert (bound >= np.maximum(up, dn) * (1 - 1e-12)).all(), family
        assert (bound[~elig] == 0).all() and (np.maximum(up, dn) > 1).any()
    # no dispersion: the bound says nothing, so the row goes on to the statistic
    assert _screen_bound("values", np.ones(1), np.ones(1), np.full(1, 5.0), np.zeros(1),
                         np.ones(1, bool), P, 0.0)[0] == np.inf


def test_the_screen_decides_as_its_exact_step_alone(monkeypatch):
    """The screen judges most series by the bound and the rest by the statistic
    itself; with the bound switched off (every series to the statistic) the same
    series are loud, week after week, through rises, drops, gaps and quiet weeks, and
    both steps decided some series calm. Fails if the bound lets a loud series pass or
    if the second step decides otherwise than the statistic."""
    from detectors import engine

    rng = np.random.default_rng(21)
    series = []
    for i in range(30):
        mu = seasonal_mean(220, 3.0 + 4 * (i % 5))
        if i % 3 == 0:
            mu[200:] *= (1.4, 2.0, 0.5)[i % 9 // 3]
        y = nb_counts(mu, seed=700 + i)
        if i % 7 == 2:
            y[rng.integers(150, 220, 10)] = np.nan
        series.append(count_series(y))
    real_screen, real_bound = engine._screen, engine._screen_bound
    seen: dict[str, list[np.ndarray]] = {}
    M = engine._Geometry.of("week", P).M
    left = [0, 0]  # series the bound decided calm, series it left to the statistic

    def counting_bound(*a, **kw):
        b = real_bound(*a, **kw)
        if b.ndim == 1:  # the screen's (a table's rows are 2-d)
            calm = (b < 1.0 - engine.SCREEN_MARGIN).reshape(-1, M).all(axis=1)
            left[0] += int(calm.sum())
            left[1] += int((~calm).sum())
        return b

    def recording(label):
        def screen(*a, **kw):
            calm = real_screen(*a, **kw)
            seen.setdefault(label, []).append(calm.copy())
            return calm
        return screen

    for label, bound in (("with", counting_bound),
                         ("without", lambda *a, **kw: np.where(a[5], np.inf, 0.0))):
        # (the tables of the replays below then compute every row: the same findings)
        monkeypatch.setattr(engine, "_screen_bound", bound)
        monkeypatch.setattr(engine, "_screen", recording(label))
        states = [replay_with_state(s.upto(190), P)[1] for s in series]
        for i in range(190, 220):
            advance_many([(st, s.periods[i], float(s.values[i]), None)
                          for st, s in zip(states, series, strict=True)], P)
    got, want = np.concatenate(seen["with"]), np.concatenate(seen["without"])
    assert np.array_equal(got, want)
    # calm series decided by the bound, and by the statistic where the bound could not
    assert left[0] > 0 and int(got.sum()) > left[0] and (~got).sum() > 0


def test_a_replays_table_computes_the_ratios_only_where_a_position_may_alarm(monkeypatch):
    """A whole-history table (replay) computes the likelihood ratios only for the rows
    on the anti-diagonal of a position whose bound reaches the screen's margin; with
    every row computed instead, the findings and the states after are the same, for
    counts through rises, spikes and gaps, positives with tests, an index and daily
    series, and most rows of a quiet history are left out. Fails if a row a finding
    or an alarm reads is left out, or if nothing is."""
    from detectors import engine

    rng = np.random.default_rng(31)
    series = []
    for i in range(24):
        n = 240
        mu = seasonal_mean(n, (2.0, 8.0, 40.0, 150.0)[i % 4])
        if i % 3 == 0:
            mu[200:] *= (1.6, 2.5)[i % 2]
        y = nb_counts(mu, seed=1100 + i)
        if i % 5 == 1:
            y[rng.integers(0, n, 12)] = np.nan
        if i % 7 == 3:
            y[180] *= 6
        series.append(count_series(y))
    tests = rng.integers(200, 400, 240).astype(float)
    pos = rng.binomial(tests.astype(int), 0.05 * (1 + (np.arange(240) >= 210))).astype(float)
    series.append(count_series(pos, denominators=tests))
    series.append(count_series(np.round(30 + rng.normal(0, 3, 240) + 15 * (np.arange(240) >= 220)),
                               metric="index"))
    days = nb_counts(np.r_[np.full(380, 4.0), np.full(20, 9.0)], seed=5)
    series.append(Series(source="ems", substance="k", values=days, periods=tuple(
        date.fromordinal(date(2023, 1, 1).toordinal() + d) for d in range(400))))
    quiet = count_series(nb_counts(np.full(240, 20.0), seed=77))
    series.append(quiet)
    real = engine._rows_that_may_alarm
    share: list[float] = []

    def counting(*a, **kw):
        got = real(*a, **kw)
        share.append(len(got) / len(a[1]))
        return got

    monkeypatch.setattr(engine, "_rows_that_may_alarm", counting)
    screened = list(replay_many(((s, P) for s in series), with_state=True))
    alone = replay_with_state(quiet, P)
    quiet_share = share[-1]  # the last table made: the quiet series on its own
    monkeypatch.setattr(engine, "_rows_that_may_alarm",
                        lambda *a, **kw: np.arange(len(a[1])))
    every = list(replay_many(((s, P) for s in series), with_state=True))
    for (f1, st1), (f2, st2) in zip(screened, every, strict=True):
        assert f1 == f2
        assert (st1 is None) == (st2 is None)
        if st1 is not None:
            assert json.dumps(st1.to_dict()) == json.dumps(st2.to_dict())
    assert alone[0] == every[-1][0]
    assert sum(any(w for w in f[190:]) for f, _ in every) >= 8  # alarms were there to keep
    assert quiet_share < 0.3 and not any(f for f in alone[0])


def test_rows_that_may_alarm_are_the_rows_of_a_loud_positions_anti_diagonal(monkeypatch):
    """Row ``r`` is kept when a position ``r .. r + M - 1`` of the same series has a
    cell at or over the bound; a cell is never carried into the next series."""
    from detectors import engine

    K, M = 12, 4
    hot = np.zeros((K, M))
    hot[3, 2] = 5.0  # position 5 of the first series (rows 0-7)
    hot[9, 1] = 5.0  # position 10 of the second series (rows 8-11)
    monkeypatch.setattr(engine, "_screen_bound", lambda *a, **kw: hot)
    series_of = np.array([0] * 8 + [1] * 4)
    z = np.zeros((K, M))
    got = engine._rows_that_may_alarm("counts", z, z, z, np.ones(K), z > 0, P, 0.0, series_of)
    assert got.tolist() == [2, 3, 4, 5, 8, 9, 10]
    hot[:] = 0.0
    hot[6, 3] = 5.0  # position 9 lies in the next series: not this series' position
    got = engine._rows_that_may_alarm("counts", z, z, z, np.ones(K), z > 0, P, 0.0, series_of)
    assert got.tolist() == []


def test_daily_series_advanced_together_give_their_replay_findings():
    """Daily series search 182 change starts: the batch step with its screen still
    gives each day what replay gives, through a doubling that alarms."""
    series = []
    for i in range(6):
        mu = np.full(480, 3.0 + 2 * i)
        if i % 2 == 0:
            mu[455:] *= 2.0
        per = tuple(date.fromordinal(date(2023, 1, 1).toordinal() + d) for d in range(480))
        series.append(Series(source="ems", substance=f"k{i}", periods=per,
                             values=nb_counts(mu, seed=900 + i)))
    full = [replay(s, P) for s in series]
    states = [replay_with_state(s.upto(450), P)[1] for s in series]
    for i in range(450, 480):
        got = advance_many([(st, s.periods[i], float(s.values[i]), None)
                            for st, s in zip(states, series, strict=True)], P)
        assert got == [f[i] for f in full], i
    assert any(f[-1] for f in full) and not all(f[-1] for f in full)


def test_the_screen_picks_the_period_left_out_as_the_table_does():
    """For a window from each column to the last, the screen's arg-extreme is the one
    the table's running extreme reaches at the window's end: the first on a tie."""
    from detectors.engine import _running_extreme, _suffix_extreme

    rng = np.random.default_rng(3)
    ex = rng.integers(-3, 4, size=(200, 12)).astype(float)  # many ties
    ex[rng.random(ex.shape) < 0.2] = np.nan
    for high in (True, False):
        got = _suffix_extreme(ex, high)
        for j in range(12):
            want = _running_extreme(ex[:, j:], high)[:, -1]
            assert np.array_equal(got[:, j], np.where(want >= 0, want + j, -1)), (high, j)


def test_many_series_replayed_together_give_each_its_own_replay(monkeypatch):
    """replay_many (fits of many series made together, windows sorted by width, read
    lazily in batches) gives each series exactly what replay and replay_with_state
    give it alone: counts with and without tests, indexes, monthly and daily series,
    gaps, histories of every length, a score series, an empty one, two params."""
    from detectors import engine

    monkeypatch.setattr(engine, "MANY_ROWS", 40)  # several batches
    rng = np.random.default_rng(5)
    series = []
    for i in range(30):
        n = int(rng.integers(12, 330))
        mu = seasonal_mean(n, 2.0 + 5 * (i % 4))
        if i % 3 == 0:
            mu[int(n * 0.8):] *= 2.5
        y = nb_counts(mu, seed=100 + i)
        if i % 5 == 1:
            y[rng.integers(0, n, n // 10)] = np.nan
        if i % 6 == 2:
            tests = rng.integers(50, 400, size=n).astype(float)
            pos = rng.binomial(tests.astype(int), 0.05 + 0.05 * (np.arange(n) >= 0.8 * n))
            series.append(count_series(pos.astype(float), denominators=tests))
        elif i % 6 == 4:
            series.append(count_series(np.clip(np.round(40 + rng.normal(0, 4, n)), 0, 100),
                                       metric="index"))
        else:
            series.append(count_series(y))
    per = tuple(date(2012 + i // 12, i % 12 + 1, 1) for i in range(96))
    series.append(Series(source="police", substance="k", periods=per,
                         values=nb_counts(np.full(96, 30.0), seed=1)))
    days = count_series(nb_counts(np.full(400, 4.0), seed=4))
    series.append(Series(source="ems", substance="k", periods=tuple(
        date.fromordinal(days.periods[0].toordinal() + i) for i in range(400)),
        values=days.values))
    series.append(count_series(np.full(40, 3.0), metric="score"))
    series.append(Series(source="x", substance="k", periods=(), values=np.zeros(0)))
    other = P.merged({"glr_h": 4.0, "baseline_years": 3.0})
    items = [(s, other if i % 4 == 3 else P) for i, s in enumerate(series)]
    got = list(replay_many(iter(items)))
    assert got == [replay(s, p) for s, p in items]
    with_state = list(replay_many(items, with_state=True))
    for (s, p), (found, st) in zip(items, with_state, strict=True):
        one, st1 = replay_with_state(s, p)
        assert found == one
        assert (st is None and st1 is None) or json.dumps(st.to_dict()) == json.dumps(
            st1.to_dict())
    assert sum(bool(f) for g in got for f in g) > 20


def test_refits_of_series_started_together_are_spread_over_the_weeks(monkeypatch):
    """Forty series that began the same week share their refit points; each makes its
    fit ahead of time, in a week set by a hash of its key, so a week's refits are about
    a quarter of them, never all, and every series still makes each fit once."""
    from detectors import engine

    made: list[int] = []
    real = engine.fit_windows

    def counting(rp, *a, **kw):
        made.append(len(rp))
        return real(rp, *a, **kw)

    series = [Series(source="src", substance=f"s{i}", periods=count_series(y).periods,
                     values=y)
              for i, y in enumerate(nb_counts(np.full(210, 6.0), seed=s) for s in range(40))]
    states = [replay_with_state(s.upto(200), P)[1] for s in series]
    monkeypatch.setattr(engine, "fit_windows", counting)
    per_week = []
    for i in range(200, 208):
        made.clear()
        got = advance_many([(st, s.periods[i], float(s.values[i]), None)
                            for st, s in zip(states, series, strict=True)], P)
        assert all(isinstance(f, list) for f in got)
        per_week.append(sum(made))
    assert sum(per_week) == 2 * len(series)  # 8 weeks: two refit points, one fit each
    assert max(per_week) <= len(series) // 2 and min(per_week) > 0, per_week


def test_incremental_state_refuses_what_it_cannot_continue():
    s = count_series(nb_counts(np.full(60, 5.0), seed=2))
    _, state = replay_with_state(s, P)
    with pytest.raises(NeedsReplay):
        state.advance(s.periods[-1], 3.0, P)
    with pytest.raises(NeedsReplay):
        state.advance(s.periods[-1] + (s.periods[1] - s.periods[0]), 3.0, P.merged({"glr_h": 9}))
    with pytest.raises(NeedsReplay):  # a daily period after weekly ones
        from datetime import timedelta

        state.advance(s.periods[-1] + timedelta(days=1), 3.0, P)


def test_states_of_the_previous_engine_version_continue_only_for_counts():
    """Version 2 changed the residual scale of other values only: a counts state (with
    or without tests) stored by version 1 continues, with the findings the current
    replay gives; an index state of version 1 is replayed; so is any other version."""
    from detectors.engine import STATE_VERSION

    assert STATE_VERSION == 2
    n = 120
    cases = [count_series(nb_counts(np.full(n, 8.0), seed=5)),
             count_series(nb_counts(np.full(n, 100.0), seed=6),
                          denominators=np.full(n, 2000.0)),
             count_series(np.round(20 * np.exp(np.random.default_rng(7).normal(0, 0.2, n))),
                          metric="index")]
    for s, continues in zip(cases, (True, True, False), strict=True):
        head = Series(source=s.source, substance=s.substance, periods=s.periods[:-1],
                      values=s.values[:-1], metric=s.metric,
                      denominators=None if s.denominators is None else s.denominators[:-1])
        _, state = replay_with_state(head, P)
        old = state.to_dict()
        old["version"] = 1
        den = None if s.denominators is None else float(s.denominators[-1])
        if continues:
            got = SeriesState.from_dict(old).advance(s.periods[-1], float(s.values[-1]), P,
                                                    denominator=den)
            assert got == replay(s, P)[-1]
        else:
            with pytest.raises(NeedsReplay):
                SeriesState.from_dict(old)
        for other in (0, 3, None, "2"):
            with pytest.raises(NeedsReplay):
                SeriesState.from_dict({**old, "version": other})


def _monthly_lab(seed, *, positivity_from=None, tests_from=None, n=84):
    rng = np.random.default_rng(seed)
    per = tuple(date(2019 + i // 12, i % 12 + 1, 1) for i in range(n))
    tests = np.full(n, 2000.0)
    p = 0.05 * np.exp(rng.normal(0, 0.05, n))
    if positivity_from is not None:
        p[positivity_from:] *= 1.5
    if tests_from is not None:
        tests[tests_from:] *= 2
    tests = rng.poisson(tests).astype(float)
    pos = rng.binomial(tests.astype(int), p).astype(float)
    return Series(source="lab", substance="x", periods=per, values=pos, denominators=tests)


def test_monthly_positivity_rise_is_found_within_two_months():
    found = 0
    for seed in range(6):
        res = replay(_monthly_lab(seed, positivity_from=70), P)
        assert not any(kinds(r, "trend") for r in res[30:70]), seed
        found += any(kinds(r, "trend") for r in res[70:73])
    assert found >= 5


def test_more_tests_alone_never_alert():
    for seed in range(6):
        res = replay(_monthly_lab(seed, tests_from=70), P)
        assert not any(f.direction == "increase" for r in res[30:] for f in r), seed


def _lab_wobble(tests_after: float, *, lift: float, months=range(72, 76), n=84) -> Series:
    """Monthly positives out of 2000 tests (``tests_after`` from month 70), positivity
    5 % +-5 % month to month, and ``lift`` times 5 % in ``months``."""
    per = tuple(date(2019 + i // 12, i % 12 + 1, 1) for i in range(n))
    tests = np.full(n, 2000.0)
    tests[70:] = tests_after
    p = 0.05 * np.where(np.arange(n) % 2 == 0, 1.05, 0.95)
    p[list(months)] = 0.05 * lift
    return Series(source="lab", substance="x", periods=per, values=np.round(tests * p),
                  denominators=tests)


def test_positivity_wobble_reads_the_same_on_more_tests():
    # four months of positivity 17 % up: within what a positivity varies, so no trend at
    # 2000 tests a month. Binomial noise alone would call it a trend once the tests
    # double (twice the positives, half the relative noise); the positivity's own
    # variation (rate_min_variation) grows with the count and keeps it quiet.
    def trends(s, params):
        return [i for i, r in enumerate(replay(s, params)) for f in r
                if f.kind == "trend" and f.direction == "increase"]

    binomial_only = DetectionParams(rate_min_variation=0.0)
    assert P.rate_min_variation > 0
    assert not trends(_lab_wobble(2000.0, lift=1.17), P)
    assert not trends(_lab_wobble(2000.0, lift=1.17), binomial_only)
    assert trends(_lab_wobble(4000.0, lift=1.17), binomial_only)
    assert not trends(_lab_wobble(4000.0, lift=1.17), P)
    # a real rise on the doubled tests is still found in its second month
    rise = trends(_lab_wobble(4000.0, lift=1.5, months=range(72, 84)), P)
    assert rise and rise[0] <= 73


def test_rate_min_variation_replays_only_series_with_a_denominator():
    n = 120
    counts = count_series(nb_counts(np.full(n, 8.0), seed=5))
    lab = count_series(nb_counts(np.full(n, 100.0), seed=6), denominators=np.full(n, 2000.0))
    other = DetectionParams(rate_min_variation=0.1)
    for s in (counts, lab):
        head = Series(source=s.source, substance=s.substance, periods=s.periods[:-1],
                      values=s.values[:-1], metric=s.metric,
                      denominators=None if s.denominators is None else s.denominators[:-1])
        _, state = replay_with_state(head, P)
        den = None if s.denominators is None else float(s.denominators[-1])
        if s is counts:  # the parameter cannot change its findings: it continues
            assert state.advance(s.periods[-1], float(s.values[-1]), other) == \
                replay(s, other)[-1]
        else:
            with pytest.raises(NeedsReplay):
                state.advance(s.periods[-1], float(s.values[-1]), other, denominator=den)


def _new_year_peaks(level: float, peak: float, seed: int, n: int = 260,
                    last_peak: float | None = None,
                    extra: int | None = None) -> tuple[Series, list[int]]:
    """Weekly Poisson counts whose first ISO week of every year is ``peak`` times the
    level (``last_peak`` in the final year; ``extra``: one more week x6)."""
    rng = np.random.default_rng(seed)
    per = weeks(n, date(2021, 1, 4))
    mu = np.full(n, level)
    firsts = [i for i, p in enumerate(per) if p.isocalendar()[1] == 1]
    mu[firsts] *= peak
    if last_peak is not None:
        mu[firsts[-1]] = level * last_peak
    if extra is not None:
        mu[extra] *= 6
    return Series(source="ambulance", substance="x", periods=per,
                  values=rng.poisson(mu).astype(float)), firsts


def _spikes(s, params):
    return [i for i, r in enumerate(replay(s, params)) for f in r if f.kind == "spike"]


def _summer_season(level: float, factor: float, weeks_long: int, seed: int,
                   n: int = 260) -> Series:
    """Weekly Poisson counts whose ISO weeks 27 .. 27 + ``weeks_long`` - 1 are
    ``factor`` times the level every year (a festival summer)."""
    rng = np.random.default_rng(seed)
    per = weeks(n, date(2021, 1, 4))
    iso = np.array([p.isocalendar()[1] for p in per])
    mu = np.full(n, level)
    mu[(iso >= 27) & (iso < 27 + weeks_long)] *= factor
    return Series(source="ambulance", substance="x", periods=per,
                  values=rng.poisson(mu).astype(float))


def _increase_messages(s: Series, params: DetectionParams, since: int) -> int:
    tracker = EpisodeTracker(params=params)
    sent = 0
    for i, found in enumerate(replay(s, params)):
        for d in tracker.update(found):
            sent += (i >= since and d.send and d.episode.endswith(":increase")
                     and d.action != "resolve")
    return sent


def test_a_season_of_a_few_weeks_every_year_is_not_a_trend():
    # three summer weeks at twice the level of 20: the smooth baseline does not follow
    # them, so without the earlier years they made trend messages; with them none
    off = DetectionParams(recurring_years=0)
    before = sum(_increase_messages(_summer_season(20.0, 2.0, 3, seed), off, 156)
                 for seed in range(16))
    after = sum(_increase_messages(_summer_season(20.0, 2.0, 3, seed), P, 156)
                for seed in range(16))
    assert before >= 3 and after == 0
    # a real rise from the start of a summer is still found
    s = _summer_season(20.0, 2.0, 3, seed=2)
    y = s.values.copy()
    y[-30:] = np.random.default_rng(9).poisson(60.0, 30)
    rising = Series(source=s.source, substance=s.substance, periods=s.periods, values=y)
    trends = [f for r in replay(rising, P)[-28:] for f in r
              if f.kind == "trend" and f.direction == "increase"]
    assert trends
    # its evidence says how many periods of the window held their usual summer peak
    # (the summer's weeks and the next, as a week either side is looked at)
    assert max(f.evidence.get("usual_peak_periods", 0) for f in trends) == 4
    assert all(f.evidence.get("usual_peak_periods", 0) <= f.evidence["observed_periods"]
               for f in trends)


def _modest_summers(peak: tuple[float, ...], last: tuple[float, ...],
                    gap_year: int | None = None, n: int = 260) -> Series:
    """Weekly counts near 20 (a fixed wiggle, no randomness) whose ISO weeks 27-30 are
    ``peak`` every year, ``last`` in the final year (``gap_year``: that year has none)."""
    per = weeks(n, date(2021, 1, 4))
    iso = np.array([p.isocalendar()[1] for p in per])
    y = np.array([20.0 + (-2, 1, 3, -1, 0, 2, -3, 0)[i % 8] for i in range(n)])
    at = np.flatnonzero((iso >= 27) & (iso < 31))
    years = [at[j:j + 4] for j in range(0, len(at), 4)]
    for j, w in enumerate(years[:-1]):
        if j != gap_year:
            y[w] = peak
    y[years[-1]] = last
    return Series(source="ambulance", substance="x", periods=per, values=y)


def test_a_modest_season_back_every_year_is_not_a_trend():
    # four summer weeks at about 1.8 times the level every year: no single year stands
    # out at recurring_alpha (the dispersion includes the peaks), so without the
    # looser every-year test the fifth summer was a trend; with it, none
    usual = (36.0, 37.0, 36.0, 37.0)
    s = _modest_summers(usual, usual)
    loose_off = DetectionParams(recurring_every_alpha=0.0)
    assert _increase_messages(s, loose_off, 156) >= 1
    assert _increase_messages(s, P, 156) == 0
    # a summer well above the usual one is still a rise
    assert _increase_messages(_modest_summers(usual, (60.0, 61.0, 60.0, 61.0)), P, 156) >= 1
    # every earlier year must have had it: one summer missing, the rule does not apply
    assert _increase_messages(_modest_summers(usual, usual, gap_year=1), P, 156) >= 1
    # incremental detection agrees with the replay
    head = Series(source=s.source, substance=s.substance, periods=s.periods[:200],
                  values=s.values[:200])
    _, state = replay_with_state(head, P)
    assert [state.advance(p, float(v), P) for p, v in
            zip(s.periods[200:], s.values[200:], strict=True)] == replay(s, P)[200:]


def _index_season(level: float, factor: float, weeks_long: int, seed: int,
                  n: int = 260) -> Series:
    """A weekly index (rounded, lognormal noise) with a New Year week and a summer
    season of ``weeks_long`` weeks at ``factor`` times the level every year."""
    rng = np.random.default_rng(seed)
    per = weeks(n, date(2021, 1, 4))
    iso = np.array([p.isocalendar()[1] for p in per])
    lam = np.full(n, level)
    lam[(iso == 1) | ((iso >= 27) & (iso < 27 + weeks_long))] *= factor
    return Series(source="trends", substance="x", periods=per, metric="index",
                  values=np.round(lam * np.exp(rng.normal(0, 0.15, n))))


def test_an_index_that_peaks_every_year_is_quiet():
    # a search index high every New Year and summer: spikes when a year's peak topped
    # the earlier ones, trends from the summer, without the earlier years; none with
    off = DetectionParams(recurring_years=0)
    cases = [_index_season(level, 2.0, wk, seed)
             for level, wk, seed in ((5.0, 3, 1), (20.0, 3, 2), (20.0, 1, 3), (50.0, 3, 4))]
    assert sum(_increase_messages(x, off, 156) for x in cases) >= 3
    assert sum(_increase_messages(x, P, 156) for x in cases) == 0
    # a real rise of the index is still found
    x = cases[1]
    y = x.values.copy()
    y[-20:] *= 2.5
    risen = Series(source=x.source, substance=x.substance, periods=x.periods, values=y,
                   metric="index")
    assert any(f.kind == "trend" and f.direction == "increase"
               for r in replay(risen, P)[-20:] for f in r)


def test_a_peak_that_comes_back_every_year_is_not_a_spike():
    # the New Year week at 2.5 times the usual 20: a spike every year without the
    # earlier years (the rule before), none once two earlier years stood out too
    off = DetectionParams(recurring_years=0)
    quiet, before = 0, 0
    for seed in range(6):
        s, firsts = _new_year_peaks(20.0, 2.5, seed)
        later = [i for i in firsts if i >= 156]  # the fourth year on: three earlier
        before += sum(i in later for i in _spikes(s, off))
        quiet += not any(i in later for i in _spikes(s, P))
    assert before >= 8  # of 12 peaks
    assert quiet == 6


def test_a_larger_peak_or_another_week_is_still_a_spike():
    s, firsts = _new_year_peaks(20.0, 2.5, seed=3, last_peak=7.0, extra=200)
    found = _spikes(s, P)
    assert firsts[-1] in found and 200 in found
    f = next(f for f in replay(s, P)[firsts[-1]] if f.kind == "spike")
    # judged against the usual peak: expected about 2.5 x 20, not 20
    assert 35 < f.level_before < 65 and f.evidence["recurring_factor"] > 1.5
    g = next(f for f in replay(s, P)[200] if f.kind == "spike")
    assert "recurring_factor" not in g.evidence and g.level_before < 25


def test_recurring_peaks_incremental_equals_replay():
    s, firsts = _new_year_peaks(20.0, 2.5, seed=4, last_peak=7.0, extra=230)
    full = replay(s, P)
    cut = 150
    head = Series(source=s.source, substance=s.substance, periods=s.periods[:cut],
                  values=s.values[:cut])
    _, state = replay_with_state(head, P)
    one = [state.advance(p, float(v), P) for p, v in zip(s.periods[cut:], s.values[cut:],
                                                        strict=True)]
    assert one == full[cut:]
    _, other = replay_with_state(head, P)
    many = [advance_many([(other, p, float(v), None)], P)[0]
            for p, v in zip(s.periods[cut:], s.values[cut:], strict=True)]
    assert many == full[cut:]
    assert any(f.kind == "spike" for r in full[cut:] for f in r)
    # many series replayed together, and advanced together week by week: each its
    # own earlier years
    others = [_new_year_peaks(level, 2.5, seed=seed)[0]
              for level, seed in ((5.0, 6), (60.0, 7), (20.0, 8))]
    others += [_summer_season(level, 2.0, wk, seed) for level, wk, seed in
               ((20.0, 3, 1), (60.0, 2, 2), (5.0, 4, 3))]
    others += [_index_season(level, 2.0, wk, seed) for level, wk, seed in
               ((20.0, 3, 5), (5.0, 1, 6))]
    together = list(replay_many([(x, P) for x in (s, *others)]))
    assert together == [full, *(replay(x, P) for x in others)]
    states = []
    for x in (s, *others):
        h = Series(source=x.source, substance=x.substance, periods=x.periods[:cut],
                   values=x.values[:cut], metric=x.metric)
        states.append(replay_with_state(h, P)[1])
    got = [[] for _ in states]
    for i in range(cut, len(s.periods)):
        step = advance_many([(st, x.periods[i], float(x.values[i]), None)
                             for st, x in zip(states, (s, *others), strict=True)], P)
        for g, found in zip(got, step, strict=True):
            g.append(found)
    assert got == [r[cut:] for r in together]
    assert any(f.kind == "spike" for r in got[0] for f in r)


def test_spike_parameters_replay_nothing():
    # a state holds no spike decision: other spike thresholds continue it
    s, _ = _new_year_peaks(20.0, 2.5, seed=5, extra=259)
    head = Series(source=s.source, substance=s.substance, periods=s.periods[:-1],
                  values=s.values[:-1])
    _, state = replay_with_state(head, P)
    other = DetectionParams(spike_alpha=0.01, spike_min_ratio=1.5)
    assert state.advance(s.periods[-1], float(s.values[-1]), other) == replay(s, other)[-1]
    for changed in (DetectionParams(glr_h=7.0), DetectionParams(recurring_years=3)):
        _, again = replay_with_state(head, P)
        with pytest.raises(NeedsReplay):
            again.advance(s.periods[-1], float(s.values[-1]), changed)


def test_a_rule_switched_off_keeps_the_fingerprint_of_states_from_before_it():
    # with recurring_years 0 and rate_min_variation 0 the engine judges as before those
    # rules existed, and a state stored then (its fingerprint made without them) goes on
    import hashlib

    from detectors.engine import params_fingerprint

    before = DetectionParams(recurring_years=0, rate_min_variation=0.0)
    dump = before.model_dump_json(exclude={"recurring_years", "recurring_alpha",
                                           "recurring_every_alpha", "rate_min_variation"})
    assert params_fingerprint(before, True) == hashlib.sha256(dump.encode()).hexdigest()[:16]
    assert params_fingerprint(P, True) != params_fingerprint(before, True)
    # the every-year test of recurring peaks came later: at 0 the states stored with
    # the first rule for recurring peaks go on
    first = DetectionParams(recurring_every_alpha=0.0)
    dump = first.model_dump_json(exclude={"recurring_every_alpha"})
    assert params_fingerprint(first, True) == hashlib.sha256(dump.encode()).hexdigest()[:16]
    assert params_fingerprint(P, True) != params_fingerprint(first, True)


def test_renormalised_quantised_index_has_no_false_increases():
    # a low-interest index rounded to whole numbers (<1 stored as 0.5); from week 150 a
    # new export on 0.4x the scale, put back by the overlap factor: steps of 2.5
    from feeds.trends_csv import rescale_to_overlap

    def shown(v):
        r = np.round(v)
        return np.where((v > 0) & (r < 1), 0.5, r)

    false = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        lam = 2.0 * np.exp(rng.normal(0, 0.2, 260))
        per = count_series(lam).periods
        old = {per[i]: float(v) for i, v in enumerate(shown(lam[:150]))}
        new = {per[98 + i]: float(v) for i, v in enumerate(shown(lam[98:] * 0.4))}
        scaled = rescale_to_overlap(new, old)
        y = np.array([old[p] if i < 150 else scaled[p] for i, p in enumerate(per)])
        res = replay(count_series(y, metric="index"), P)
        false += any(f.direction == "increase" and f.category == 2 for r in res for f in r)
    assert false <= 1


def test_expected_levels_are_the_judged_baseline():
    from detectors.engine import expected_levels

    s = count_series(nb_counts(np.full(150, 20.0), seed=4))
    band = expected_levels(s, P)
    assert np.isnan(band["expected"][:8]).all()  # no baseline yet
    later = slice(60, None)
    assert np.nanmean(band["expected"][later]) == pytest.approx(20.0, rel=0.15)
    assert (band["lo"][later] < band["expected"][later]).all()
    assert (band["expected"][later] < band["hi"][later]).all()
    assert (band["hi"][later] < band["thr"][later]).all()
