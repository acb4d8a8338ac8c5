"""The five-step scale: a relative change and its significance -> a score -2..2.

This mapping is our design (the Føre Var reports do not publish theirs): a change is
*strong* when it is at least ``strong_increase`` (default +50 %) or at most
``-strong_decrease`` (default -33 %, the inverse of +50 %) **and** significant at
``alpha``; it is *small* from ``small_increase`` (+15 %) or ``-small_decrease`` (-13 %),
significant or not unless ``require_significance_for_small``; otherwise stable.
"""

from __future__ import annotations

import math

from detectors.base import SCALE
from detectors.params import DetectionParams


def categorize(relative_change: float, p_value: float | None, params: DetectionParams) -> int:
    """The five-step score of a change.

    ``p_value`` None means no test applies (e.g. one value per window): the change
    counts as significant. A NaN relative change is stable.
    """
    if relative_change is None or math.isnan(relative_change):
        return 0
    significant = p_value is None or p_value < params.alpha
    small_ok = significant or not params.require_significance_for_small
    if relative_change >= params.strong_increase and significant:
        return 2
    if relative_change >= params.small_increase and small_ok:
        return 1
    if relative_change <= -params.strong_decrease and significant:
        return -2
    if relative_change <= -params.small_decrease and small_ok:
        return -1
    return 0


def words(category: int, language: str = "en") -> str:
    """The words of a score: ``words(2) == "strong increase"``; ``language="no"`` for Norwegian."""
    norwegian, english = SCALE[int(category)]
    return norwegian if language == "no" else english
