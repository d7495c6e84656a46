"""The suite's own settings: nothing in it depends on how fast a loaded machine runs."""

from __future__ import annotations

from hypothesis import settings


def test_property_tests_have_no_per_example_time_limit() -> None:
    # hypothesis's default deadline (200 ms per example) fails a property on a busy machine, not on a defect.
    assert settings.default.deadline is None
