"""A short run of scripts/fault_injection.py: SIGKILL during start-up work, a poll,
detection and a delivery, then the checks (integrity, equality with a clean run,
every alert delivered, duplicates only after an interrupted send).
``make fault-injection`` runs the same with 50 kills."""

from __future__ import annotations

import importlib.util

from tests.service_kit import ROOT

spec = importlib.util.spec_from_file_location("fault_injection",
                                              ROOT / "scripts" / "fault_injection.py")
fault_injection = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fault_injection)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path):
    report = fault_injection.run(4, 7, tmp_path, quiet=True)
    assert report["checks"] == {k: True for k in report["checks"]}, report
    assert report["ok"]
    assert report["alerts"] == fault_injection.NOTICES_PER_ROUND * 5
    # three count tables x two substances x the weeks of five rounds, plus notice counts
    assert report["observations"] >= 3 * 2 * fault_injection.WEEKS_PER_ROUND * 5
    assert sum(report["killed_during"].values()) == 4


def test_delivery_fault_scenarios_lose_nothing_and_repeat_only_unrecorded(tmp_path):
    """A short version of the scenarios ``make fault-injection`` runs after its kills."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import fault_scenarios

    res = fault_scenarios.run_scenarios(
        tmp_path, ["locked_store", "retry_after", "poisoned_notice", "bad_stores"])
    checks = fault_scenarios.checks(res)
    assert checks and all(checks.values()), res
    assert res["locked_store"]["messages_before_claims_expired"] == 8  # none re-sent early
    assert res["retry_after"]["posts_while_429"] == 1
