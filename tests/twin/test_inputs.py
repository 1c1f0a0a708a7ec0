"""The Python API takes facility and scenario names where it takes objects, and says what it needs."""

import numpy as np
import pytest
from factory_twin.optimization import dispatch

from factory_twin import twin


def test_simulate_and_dispatch_accept_names():
    f = twin.load_facility("campus-100mw")
    s = twin.load_scenario("hot-day-dr", f)
    by_name = twin.simulate("campus-100mw", "hot-day-dr", duration="2min", record_every="60s")
    by_object = twin.simulate(f, s, duration="2min", record_every="60s")
    np.testing.assert_array_equal(by_name.grid_import_mw.values, by_object.grid_import_mw.values)
    assert by_name.attrs["scenario"] == "hot-day-dr"
    plan = dispatch("campus-100mw", None, horizon="1h", step="15min")
    assert plan.attrs["status"] == "optimal" and plan.attrs["facility"] == "campus-100mw"


def test_plan_variables_carry_long_names_and_run_unit_spellings():
    plan = dispatch("campus-100mw", None, horizon="1h", step="15min")
    run = twin.simulate("campus-100mw", None, duration="2min")
    for name, v in plan.data_vars.items():
        assert v.attrs.get("long_name"), name
    assert plan.tokens_per_s.attrs["units"] == run.tokens_per_s.attrs["units"] == "s-1"
    assert plan.price.attrs["units"] == run.price_per_mwh.attrs["units"]


@pytest.mark.parametrize(("args", "message"), [((42, None), "facility: expected a Facility"),
                                               (("campus-100mw", 3.5), "scenario: expected a Scenario")])  # fmt: skip
def test_wrong_types_say_what_is_needed(args, message):
    with pytest.raises(TypeError, match=message):
        twin.simulate(*args, duration="1min")
