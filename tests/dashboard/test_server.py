"""The server's snapshot source: one read per published snapshot, shared by every session's callbacks."""

import numpy as np
from factory_twin.dashboard.server import LatestSnapshot
from factory_twin.twin.live import Snapshot, write_snapshot


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
