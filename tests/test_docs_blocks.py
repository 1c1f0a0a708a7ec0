"""The docs' shell blocks as bench/replay_docs.py reads them: every block tagged, commands split as bash runs them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("replay_docs", REPO / "bench" / "replay_docs.py")
replay_docs = sys.modules.setdefault("replay_docs", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(replay_docs)


def test_every_block_of_the_docs_says_whether_it_runs():
    blocks, errors = replay_docs.collect(REPO, [])
    assert errors == []
    files = {b.file for b in blocks if b.info.split()[:1] == ["bash"] and "no-replay" not in b.info}
    assert {"README.md", "docs/flex.md", "docs/links.md", "docs/dsx-exchange.md", "docs/power-topology.md"} <= files


def test_commands_are_split_as_bash_reads_them():
    body = [
        "mosquitto -p 1883 &      # a broker, in the background",
        "",
        "# a comment line",
        "cat > a.toml <<'EOF'",
        'x = "&"',
        "EOF",
        "factory-twin simulate \\",
        "    --out run.nc   # runs && ends",
        "a && b",
    ]
    cmds = replay_docs.split_commands("x.md", 10, body)
    assert [(c.line, c.background) for c in cmds] == [(10, True), (13, False), (16, False), (18, False)]
    assert cmds[1].text == "cat > a.toml <<'EOF'\nx = \"&\"\nEOF"
    assert cmds[2].text == "factory-twin simulate \\\n    --out run.nc   # runs && ends"


def test_local_ports_are_replaced_by_one_free_port_each(tmp_path):
    (tmp_path / ".venv").mkdir()
    r = replay_docs.Replay(tmp_path, timeout=1)
    a, _ = r.substitute(replay_docs.Command("x.md", 1, "mosquitto -p 1883 &", True))
    cmd = replay_docs.Command("x.md", 2, "x --broker mqtt://127.0.0.1:1883 --metrics-port 9401", False)
    b, notes = r.substitute(cmd)
    broker, metrics = r.ports["1883"], r.ports["9401"]
    assert a == f"mosquitto -p {broker} &"
    assert b == f"x --broker mqtt://127.0.0.1:{broker} --metrics-port {metrics}"
    assert broker != metrics and notes == [f"port 9401 -> {metrics} (a free one)"]


def test_every_override_matches_a_replayed_command_of_its_doc():
    blocks, _ = replay_docs.collect(REPO, [])
    for o in replay_docs.OVERRIDES:
        texts = [c.text for b in blocks if b.file == o.file and "no-replay" not in b.info for c in b.commands]
        assert sum(o.old in t for t in texts) == 1, o
