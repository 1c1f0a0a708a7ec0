"""The power-architecture study (issue 24): tier books against the unreduced one-line diagram, the rack converters
against their cited points, copper from the elements' ratings, the study through the runner with its year book
closed, and bad sweeps refused before any case runs."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from factory_twin.optimization.studies import power_architecture as pa
from factory_twin.optimization.studies.runner import run_study
from factory_twin.twin.facility.power_chains import chain_templates
from factory_twin.twin.simulation import design

from factory_twin import data

BOOKS = 1e-9


@pytest.fixture(scope="module", params=["ac-2n", "dc800-2n"])
def site(request):
    return request.param, pa.study_facility("campus-100mw", request.param)


def test_tier_books_match_the_unreduced_diagram(site):
    """Per tier, the reduced flows (one rack per type, merged elements) equal the sums over every element and rack
    of the full diagram, and grid = rack input + losses + cooling."""
    _, f = site
    types = design.rack_types(f)
    gpu_w = np.stack([f.tdp_w, 0.4 * f.tdp_w])  # full load and 40 % of TDP
    b = pa.tier_books(f, gpu_w[:, types.rack], 33.0, 25.0, types)
    rt = design.rack_totals(f, gpu_w)
    cooling = design.cooling_power_w(f, rt.q_liquid_w, rt.q_air_w, 33.0, 25.0)
    flow = design.grid_flow(f, rt, cooling)  # per element, per rack: no reduction
    tier = pa.tier_of(f.topology, f.hall_names)
    for k, t in enumerate(pa.TIERS):
        if t == "rack":
            np.testing.assert_allclose(b["in_w"][k], rt.it_w, rtol=BOOKS)
            np.testing.assert_allclose(b["loss_w"][k], rt.it_w - rt.rack_dc_w, rtol=BOOKS)
        else:
            np.testing.assert_allclose(b["in_w"][k], flow.in_w[tier == t].sum(axis=0), rtol=BOOKS, atol=1e-6)
            np.testing.assert_allclose(b["loss_w"][k], flow.loss_w[tier == t].sum(axis=0), rtol=BOOKS, atol=1e-6)
    np.testing.assert_allclose(b["grid_w"], b["rack_in_w"] + b["losses_w"] + b["cooling_w"], rtol=BOOKS)
    np.testing.assert_allclose(b["grid_w"], flow.grid_w, rtol=BOOKS)


def test_rack_converters_follow_their_cited_points(site):
    """The rack tier's efficiency at full load is the chain's cited curve (data/converters.toml) at the racks'
    load fraction: interpolated by hand from the points."""
    chain, f = site
    with data.path("converters.toml").open("rb") as fh:
        curves = tomllib.load(fh)
    c = curves["dcdc-800v-50v" if chain == "dc800-2n" else "titanium-ac"]
    dc = f.gpus * f.tdp_w + f.non_gpu_w
    eta = np.interp(dc / (f.psu_count * f.psu_rating_w), c["load"], c["efficiency"])
    types = design.rack_types(f)
    b = pa.tier_books(f, f.tdp_w[types.rack][None, :], 33.0, 25.0, types)
    r = list(pa.TIERS).index("rack")
    assert 1 - b["loss_w"][r, 0] / b["in_w"][r, 0] == pytest.approx(dc.sum() / (dc / eta).sum(), rel=1e-12)


def test_busway_copper_from_the_ratings(site):
    """Busway copper from each busway's rating: current at its voltage (three-phase at the power factor, or DC),
    area at 2 A/mm2, 4 (AC: phases + neutral) or 2 (DC) conductors of 30 m, IEC 60028 density."""
    chain, f = site
    kg = 0.0
    for el in f.spec.topology.elements:
        if el.kind == "busway":
            i = el.rating_kva * 1e3 / (np.sqrt(3) * el.voltage_v)
            kg += el.count * 4 * i / 2.0 * 1e-6 * 30.0 * 8890.0
        elif el.kind == "dc-busway":
            kg += el.count * 2 * el.rating_kw * 1e3 / el.voltage_v / 2.0 * 1e-6 * 30.0 * 8890.0
    assert kg > 0
    bus, rack = pa.copper_kg(f, chain_templates()[chain])
    assert bus == pytest.approx(kg, rel=2e-3)  # conductor areas are stored to 0.1 mm2
    volts = 50.0 if chain == "ac-2n" else 800.0
    assert rack == pytest.approx(np.sum(2 * (f.gpus * f.tdp_w + f.non_gpu_w) / volts / 2.0 * 1e-6 * 2.3 * 8890.0))


def test_the_study_through_the_runner(tmp_path):
    """campus-100mw, both chains, the design point and one part of the year at 1 h, serial: every case ok, the year
    book closes (grid = rack DC + electrical losses + cooling), the same rack energy on both chains, and the
    summary says the year is incomplete."""
    study = tomllib.loads(data.path("studies", "power-architecture.toml").read_text())
    study["options"]["step"] = "1h"
    study["sweep"] |= {"facility": ["campus-100mw"], "part": [0, 1]}
    ds = run_study(study, tmp_path / "out", serial=True, progress=False)
    assert (ds.status == 0).all()
    s = ds.sel(facility="campus-100mw")
    np.testing.assert_allclose(s.year_grid_mwh, s.year_rack_dc_mwh + s.year_losses_mwh + s.year_cooling_mwh, rtol=BOOKS)
    rack = s.year_rack_dc_mwh.values
    assert rack[0] == pytest.approx(rack[1], rel=1e-12)
    assert s.year_tokens.values[0] == pytest.approx(s.year_tokens.values[1], rel=1e-12)
    assert "730 h, not 8,760" in ds.attrs["warning"]
    assert (tmp_path / "out" / "results.nc").is_file() and (tmp_path / "out" / "report.html").is_file()
    text = pa.markdown(ds)
    assert "campus-100mw dc800-2n" in text and "chain efficiency over the year" in text
    # storage for the grid's sub-second rules (issue 24 item 4): compliant with exactly the sized stores, which
    # reproduce the unbounded run's grid trace, and the books close with them
    d = s.sel(part=0)
    assert d.storage_compliant.values.all() and (d.storage_energy_mwh > 0).all() and (d.storage_power_mw > 0).all()
    assert (np.abs(d.storage_book_residual) < BOOKS).all() and (d.storage_poi_match_mw < 1e-3).all()
    assert "supercap" in str(d.storage_layers.sel(chain="dc800-2n").values)
    assert "rack battery" in str(d.storage_layers.sel(chain="ac-2n").values)
    assert "storage for the grid's sub-second rules: energy [MWh]" in text and "MISSED" not in text


def test_bad_sweeps_are_refused_before_any_case():
    study = {"analysis": "power-architecture", "sweep": {"facility": ["campus-100mw", "nowhere"],
             "chain": ["ac-2n", "dc400"], "part": [0, 13]}}  # fmt: skip
    with pytest.raises(ValueError) as e:
        pa.check(study)
    msg = str(e.value)
    assert "sweep.chain = 'dc400'" in msg and "sweep.part = 13" in msg and "sweep.facility = 'nowhere'" in msg
