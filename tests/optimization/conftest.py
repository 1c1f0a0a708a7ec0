"""Fixtures the optimization tests share: the 100 MW reference campus and its hot-day DR scenario."""

import pytest

from factory_twin import twin


@pytest.fixture(scope="module")
def campus():
    return twin.load_facility("campus-100mw")


@pytest.fixture(scope="module")
def hot(campus):
    return twin.load_scenario("hot-day-dr", campus)
