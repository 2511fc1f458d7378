"""Failpoints: `@N` fires from the Nth time a point is reached, `*M` at most M times."""

from __future__ import annotations

import pytest

from config import failpoints


@pytest.fixture
def points(monkeypatch):
    def set_points(spec: str) -> None:
        monkeypatch.setenv("I2VMON_FAILPOINTS", spec)
        failpoints._points.cache_clear()
        monkeypatch.setattr(failpoints, "_fired", {})
        monkeypatch.setattr(failpoints, "_reached", {})

    yield set_points
    failpoints._points.cache_clear()


def _fires(name: str) -> bool:
    try:
        failpoints.failpoint(name)
    except RuntimeError:
        return True
    return False


def test_at_n_fires_from_the_nth_time_the_point_is_reached(points):
    points("denoising_step=error@3")
    assert [_fires("denoising_step") for _ in range(5)] == [False, False, True, True, True]


def test_at_n_with_a_count_fires_that_many_times_from_the_nth(points):
    points("denoising_step=error@3*1")
    assert [_fires("denoising_step") for _ in range(5)] == [False, False, True, False, False]


def test_a_count_alone_fires_from_the_first_time(points):
    points("denoising_step=error*2")
    assert [_fires("denoising_step") for _ in range(3)] == [True, True, False]
