"""The compiled piecewise-linear helpers against numpy."""

import numpy as np
from factory_twin.models.piecewise import interp


def test_interp_equals_numpy_bit_for_bit():
    """Points in no order, on the breakpoints, outside them and NaN: the same floats as np.interp."""
    rng = np.random.default_rng(1)
    for xp, fp in (([0.1, 0.2, 0.5, 1.0], [0.90, 0.94, 0.96, 0.91]), ([0.0, 3.0], [5.0, -1.0])):
        xp, fp = np.array(xp), np.array(fp)
        x = np.concatenate([rng.uniform(xp[0] - 0.3, xp[-1] + 0.3, 50_000), xp, [xp[0] - 1, xp[-1] + 1, np.nan]])
        want = np.interp(x, xp, fp)
        got = interp(x, xp, fp)
        assert np.array_equal(got, want, equal_nan=True)
        assert np.isnan(got[-1]) and got[-2] == fp[-1] and got[-3] == fp[0]
