"""Converter curves of data/converters.toml: the three-term loss fitted to the cited points reproduces them within
1 %, the cited peaks hold, and a curve the form cannot follow is refused."""

import numpy as np
import pytest
from factory_twin.models.power import converter_efficiency, fit_loss_coefficients, ups_loss_w
from factory_twin.twin.facility.electrical import converter_curve, converter_curves, loss_coefficients

DIAGRAM_CURVES = ("sst-mv-800vdc", "dcdc-800v-50v")  # the curves the one-line diagram's converters take


def test_fit_recovers_known_coefficients():
    c = (0.004, 0.007, 0.011)
    x = np.array([0.1, 0.25, 0.5, 0.75, 1.0])
    got = fit_loss_coefficients(x, converter_efficiency(x, *c))
    np.testing.assert_allclose(got, c, rtol=1e-9)
    # the efficiency is the UPS loss model's: eta = P / (P + loss)
    p = 0.6 * 2e6
    assert converter_efficiency(0.6, *c) == pytest.approx(p / (p + float(ups_loss_w(p, 2e6, *c))), rel=1e-12)


@pytest.mark.parametrize("name", DIAGRAM_CURVES)
def test_curves_reproduce_their_cited_points_within_one_percent(name):
    cur = converter_curve(name)
    eta = converter_efficiency(cur.load, *loss_coefficients(name))
    err = np.abs(eta / np.asarray(cur.efficiency) - 1.0)
    print(f"{name}: largest deviation {err.max():.2e} over {len(cur.load)} points")
    assert err.max() < 0.01


def test_cited_peaks():
    # NVIDIA 800 VDC white paper: MV rectifier / SST >= 98.5 %; the curve peaks there, between half and 3/4 load
    x = np.linspace(0.05, 1.0, 2000)
    sst = converter_efficiency(x, *loss_coefficients("sst-mv-800vdc"))
    assert sst.max() == pytest.approx(0.985, abs=1e-4) and 0.5 <= x[np.argmax(sst)] <= 0.75
    # Renesas 800 V DC-DC 98 %, with the Vicor DCX form (no proportional term): peak at half load
    c0, c1, c2 = loss_coefficients("dcdc-800v-50v")
    assert c1 == pytest.approx(0.0, abs=1e-9)
    assert converter_efficiency(0.5, c0, c1, c2) == pytest.approx(0.98, abs=1e-5)


def test_a_curve_the_form_cannot_follow_is_refused():
    # the 80 PLUS Titanium minimum drops 5 points from half to full load: no three-term converter loss does that
    assert "titanium-ac" in converter_curves()
    with pytest.raises(ValueError, match="three-term loss within 1%"):
        loss_coefficients("titanium-ac")
    with pytest.raises(ValueError, match="unknown converter curve"):
        converter_curve("nope")
