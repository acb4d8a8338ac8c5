"""Detection parameters: one validated, frozen model for every tunable number.

The config layer builds the params of one series as
``DetectionParams().merged(global_table, substance_table, source_table)`` from the
``[detection]``, ``[substances.<id>.detection]`` and ``[[sources]].detection`` tables;
later tables win. The defaults need no per-series tuning.

The episode (alerting) rules live here too, so one table configures a series.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DetectionParams(BaseModel):
    """All thresholds of the detection engine, the five-step scale and the episode rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- data requirements -------------------------------------------------------------
    min_points: int = Field(
        10,
        ge=3,
        description="Fewer observed periods than this: no findings at all (never an error).",
    )
    min_baseline_points: int = Field(
        8,
        ge=3,
        description="Observed periods the baseline window needs before a period can be judged.",
    )
    period: Literal["auto", "day", "week", "month"] = Field(
        "auto",
        description="Length of one period; 'auto' infers it from the period dates "
        "(all on the 1st with steps of 28+ days: month; steps divisible by 7: week; else day).",
    )

    # --- baseline ----------------------------------------------------------------------
    baseline_years: float = Field(
        5.0,
        gt=0,
        description="Longest history (in years) the baseline regression uses.",
    )
    baseline_half_life_years: float | None = Field(
        None,
        gt=0,
        description="Age (in years) at which a baseline point weighs half as much as the "
        "newest; None weighs the whole window equally.",
    )
    guard_weeks: float = Field(
        8.0,
        ge=0,
        description="Time (in weeks) between the end of the baseline window and the period "
        "judged, so a change that is under way does not raise its own expectation "
        "(8 weeks: 8 weekly or 2 monthly periods).",
    )
    refit_weeks: float = Field(
        4.0,
        gt=0,
        description="The baseline is refitted every this many weeks (at least every period) "
        "and extrapolated in between.",
    )
    seasonal_min_years: float = Field(
        2.0,
        ge=1.0,
        description="Yearly seasonality (one sine/cosine pair) enters the baseline only "
        "when the baseline window holds at least this many years of observations; a second "
        "pair (half-year cycle) one year later.",
    )
    trend_min_years: float = Field(
        1.0,
        gt=0,
        description="A linear time trend enters the baseline only with at least this "
        "many years of observations in the window.",
    )
    trend_z: float = Field(
        1.0,
        ge=0,
        description="The fitted trend is shrunk by z²/(z² + trend_z²) (z its Wald statistic): "
        "halved at z = ±trend_z, kept nearly whole when clearly significant; 1 minimises "
        "the estimated mean squared error of the extrapolated trend.",
    )
    reweight_threshold: float = Field(
        2.58,
        gt=0,
        description="Baseline points whose leverage-standardised Anscombe residual is above "
        "this are down-weighted (past outbreaks and spikes; Farrington et al. 1996, "
        "Noufaily et al. 2013).",
    )
    min_dispersion: float = Field(
        1.0,
        gt=0,
        description="Floor of the estimated overdispersion of counts (1 = Poisson).",
    )
    recurring_years: int = Field(
        2,
        ge=0,
        description="When a period's value is high and the same period stood out in at "
        "least this many of the earlier years the baseline covers (a New Year's week, a "
        "festival summer), its expected value is raised by the median excess those years "
        "showed, for spikes and trends alike, so a peak that comes back every year is no "
        "alarm unless it is larger. 0 turns it off.",
    )
    recurring_alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="A period of an earlier year stood out when its upper-tail probability "
        "under the baseline was below this.",
    )
    recurring_every_alpha: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="A high period also counts as coming back every year when the same "
        "period stood out at this looser level in every earlier year the baseline covers, "
        "at least three of them (a modest peak, such as a festival summer of a few weeks, "
        "that no single year shows clearly). 0 turns it off.",
    )
    rate_min_variation: float = Field(
        0.05,
        ge=0,
        description="Positives with a denominator: the least period-to-period variation "
        "(relative sd) assumed of the positivity itself, beyond the binomial noise of the "
        "positives. It adds variance that grows with the square of the expected count, so "
        "more tests at the same positivity do not read as a rise. 0 turns it off.",
    )

    # --- trend (generalised likelihood ratio) -----------------------------------------
    glr_h: float = Field(
        6.5,
        gt=0,
        description="Log likelihood ratio (increase or decrease of the mean from a change "
        "time in the search window against no change) at which a trend is current.",
    )
    glr_loo_h: float = Field(
        4.5,
        gt=0,
        description="The same ratio without the window's most extreme period must reach "
        "this too, so one outlying period (a spike) never makes a trend on its own.",
    )
    glr_window_weeks: float = Field(
        26.0,
        gt=0,
        description="How far back (in weeks) a change may have started; the baseline of "
        "each candidate start is the one fitted before it.",
    )
    min_trend_days: float = Field(
        7.0,
        ge=0,
        description="A trend needs evidence from at least two periods spanning at least this "
        "many days (two weekly or monthly periods, seven daily ones).",
    )
    trend_min_relative_change: float = Field(
        0.10,
        ge=0,
        description="A trend whose level moved less than this (relative) is not reported.",
    )

    # --- spikes ------------------------------------------------------------------------
    spike_alpha: float = Field(
        0.0001,
        gt=0,
        lt=1,
        description="Upper-tail probability below which the newest value is a spike.",
    )
    spike_min_ratio: float = Field(
        2.0,
        ge=1,
        description="A spike must also be at least this many times the expected value.",
    )
    spike_min_excess: float = Field(
        3.0,
        ge=0,
        description="A count spike must exceed the expected count by at least this much.",
    )
    # --- five-step scale ---------------------------------------------------------------
    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Significance level for a 'strong' category and for window comparisons.",
    )
    small_increase: float = Field(
        0.15, gt=0, description="Relative change at or above which a change is a small increase."
    )
    strong_increase: float = Field(
        0.50,
        gt=0,
        description="Relative change at or above which a significant change is a strong increase.",
    )
    small_decrease: float = Field(
        0.13,
        gt=0,
        lt=1,
        description="Relative fall at or above which a change is a small decrease (0.13 = -13 %).",
    )
    strong_decrease: float = Field(
        0.33,
        gt=0,
        lt=1,
        description="Relative fall at or above which a significant change is a strong decrease.",
    )
    require_significance_for_small: bool = Field(
        False,
        description="When true a small increase/decrease must also be significant at 'alpha'.",
    )
    half_year_start_months: tuple[int, int] = Field(
        (4, 10),
        description="First months of the two half-years: April-September and October-March.",
    )

    # --- synthesis ---------------------------------------------------------------------
    require_corroboration: bool = Field(
        False,
        description="When true a substance alert needs min_sources_for_strong agreeing sources.",
    )
    min_sources_for_strong: int = Field(
        2,
        ge=1,
        description="Independent sources that must agree for a 'strong increase' of a substance.",
    )
    critical_sources: int = Field(
        3,
        ge=1,
        description="Agreeing sources from which a substance verdict is 'critical'.",
    )

    # --- episodes (alerting rules) -----------------------------------------------------
    resolve_after_periods: int = Field(
        4,
        ge=1,
        description="An episode ends after this many periods without a finding of its kind.",
    )
    repeat_after_periods: int | None = Field(
        None,
        ge=1,
        description="Re-send an ongoing episode after this many periods (None: never).",
    )
    min_alert_category: int = Field(
        1,
        ge=0,
        le=2,
        description="A finding opens or feeds an episode only when its five-step score is at "
        "least this far from stable (1: a small increase or decrease; 0: any significant "
        "change, even one the scale calls stable).",
    )
    escalate_factor: float = Field(
        1.5,
        gt=1,
        description="Re-send when the relative change grows by this factor since the last send.",
    )
    send_resolve: bool = Field(False, description="Send a message when an episode ends.")
    alert_decreases: bool = Field(
        False,
        description="Send decrease episodes too (by default decreases only feed the scale).",
    )

    @model_validator(mode="after")
    def _check_order(self) -> DetectionParams:
        if self.strong_increase < self.small_increase:
            raise ValueError("strong_increase must be >= small_increase")
        if self.strong_decrease < self.small_decrease:
            raise ValueError("strong_decrease must be >= small_decrease")
        a, b = self.half_year_start_months
        if not (1 <= a <= 12 and 1 <= b <= 12 and (b - a) % 12 == 6):
            raise ValueError("half_year_start_months must be two months six months apart")
        return self

    def merged(self, *overrides: dict[str, Any] | None) -> DetectionParams:
        """These params with ``overrides`` applied in order (later dicts win), validated.

        Raises:
            pydantic.ValidationError: an unknown key or a bad value.
        """
        data = self.model_dump()
        for override in overrides:
            if override:
                data.update(override)
        return DetectionParams.model_validate(data)
