"""For tests: a real Prometheus server (Debian's /usr/bin/prometheus) of the test's own on 127.0.0.1, queried
over its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

from support import free_port, wait_for

PROMETHEUS = "/usr/bin/prometheus"


class Prometheus:
    """Scrapes ``targets`` (host:port) every ``interval_s``; :meth:`query` runs PromQL through ``/api/v1/query``."""

    def __init__(self, folder: Path, targets: list[str], interval_s: float = 1.0):
        if not Path(PROMETHEUS).exists():
            raise RuntimeError(f"{PROMETHEUS} not installed (Debian package prometheus; .ci/run installs it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = folder / "prometheus.yml"
        listed = ", ".join(f'"{t}"' for t in targets)
        cfg.write_text(
            f"global: {{scrape_interval: {interval_s:g}s, evaluation_interval: {interval_s:g}s}}\n"
            f"scrape_configs:\n  - job_name: twin\n    scrape_timeout: {interval_s:g}s\n"
            f"    static_configs: [{{targets: [{listed}]}}]\n"
        )
        self.log = (folder / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self._ready, 30, "prometheus to be ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path: str, **params) -> dict:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{q}", timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[tuple[dict, float]]:
        data = self.api("query", query=promql)
        return [(x["metric"], float(x["value"][1])) for x in data["result"]]

    def scalar(self, promql: str) -> float:
        rows = self.query(promql)
        assert len(rows) == 1, (promql, rows)
        return rows[0][1]

    def scraped_after(self, t_wall: float) -> bool:
        """Every target up and scraped (start of the scrape) after wall time ``t_wall``."""
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(
            a["health"] == "up" and datetime.fromisoformat(a["lastScrape"]).timestamp() > t_wall for a in active
        )

    def wait_scrape(self, timeout_s: float = 30) -> None:
        t = time.time()
        wait_for(lambda: self.scraped_after(t), timeout_s, "a complete scrape of every target")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
