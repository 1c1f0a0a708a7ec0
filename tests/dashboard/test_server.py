"""The server's snapshot source: one read per published snapshot, shared by every session's callbacks."""

import numpy as np
from factory_twin.dashboard.server import LatestSnapshot
from factory_twin.twin.live.runner import Snapshot, write_snapshot


def test_each_published_snapshot_is_read_once(tmp_path):
    path = tmp_path / "snapshot.npz"
    source = LatestSnapshot(path)
    assert source() is None  # before the first snapshot
    write_snapshot(path, Snapshot({"seq": 1}, {"hist_time": np.arange(3), "rack_hist_x": np.ones((2, 2))}))
    first = source()
    assert first.meta["seq"] == 1 and source() is first  # the second caller gets the same object
    assert "rack_hist_x" not in first.arrays and "rack_hist_x" in source(rack_history=True).arrays
    write_snapshot(path, Snapshot({"seq": 2}, {"hist_time": np.arange(4)}))
    assert source().meta["seq"] == 2 and source()["hist_time"].size == 4


def test_tabs_share_tick_answers_per_snapshot_but_never_clicks_or_the_runner_banner(tmp_path):
    from factory_twin.dashboard.server import share_tick_responses
    from flask import Flask, jsonify

    path = tmp_path / "snapshot.npz"
    write_snapshot(path, Snapshot({"seq": 1}, {"hist_time": np.arange(3)}))
    app, calls = Flask("t"), []

    @app.post("/_dash-update-component")
    def update():
        calls.append(1)
        return jsonify({"answer": len(calls)})

    share_tick_responses(app, LatestSnapshot(path))
    client = app.test_client()

    def post(n, output="a.children", changed="tick.n_intervals"):
        body = {"output": output, "inputs": [{"id": "tick", "property": "n_intervals", "value": n}],
                "changedPropIds": [changed], "state": []}  # fmt: skip
        return client.post("/_dash-update-component", json=body).get_json()["answer"]

    assert post(1) == post(2) == post(7) == 1  # three tabs, one computation
    assert post(1, output="b.figure") == 2  # another callback
    assert post(1, changed="btn.n_clicks") == 3 and post(1, changed="btn.n_clicks") == 4  # clicks: always
    assert post(1, output="..runner-banner.style...runner-error.children..") == 5
    assert post(3, output="..runner-banner.style...runner-error.children..") == 6
    write_snapshot(path, Snapshot({"seq": 2}, {"hist_time": np.arange(4)}))
    assert post(3) == 7  # a new snapshot: computed again
