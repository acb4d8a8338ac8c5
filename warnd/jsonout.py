"""What a command prints with ``--json``: standard JSON, for scripts.

Python's :mod:`json` writes a float that is not finite as ``Infinity`` or ``NaN``,
which JSON has no words for, so a script's parser (jq, a browser's, most others)
refuses the whole output. Such a number (the relative change of a rise from nothing
is infinite) is ``null`` here.
"""

from __future__ import annotations

import json
import math
from typing import Any


def print_json(obj: Any) -> None:
    """``obj`` printed as indented JSON (non-ASCII as it is; other objects as text)."""
    print(json.dumps(finite_or_null(obj), indent=2, ensure_ascii=False, default=str,
                     allow_nan=False))


def finite_or_null(v: Any) -> Any:
    """``v`` with every float that is not finite, at any depth, as ``None``."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: finite_or_null(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [finite_or_null(x) for x in v]
    return v
