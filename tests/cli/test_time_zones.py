"""Every time printed or written carries its zone (issue 20 item 28): the twin keeps the site's local standard
time, naive; what leaves the process says which zone it is in (the site's offset, or UTC for wall-clock logs)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
from factory_twin.links.prometheus.exporter import Exporter
from factory_twin.links.prometheus.readings import Readings
from factory_twin.links.redfish.steer import SteerState
from factory_twin.twin.scenario.timeparse import site_time, utc_offset
from factory_twin.twin.simulation.engine import Twin
from support import zoneless

from factory_twin import twin


def test_site_times_carry_the_site_offset():
    assert site_time(np.datetime64("2026-12-05T03:29:30"), -7.0) == "2026-12-05T03:29:30-07:00"
    assert utc_offset(5.5) == "+05:30" and utc_offset(0.0) == "+00:00" and utc_offset(-9.5) == "-09:30"
    # the text the agent printed is found; a zoned one is not
    assert zoneless("stopped at 2026-12-05T03:29:30: 0 refused") == ["2026-12-05T03:29:30"]
    assert zoneless("2026-12-05 10:29:30,125 INFO x") == ["2026-12-05 10:29:30,125"]
    assert zoneless("at 2026-12-05T03:29:30-07:00, 2026-12-05T10:29:30.125Z, 2026-12-05T10:29:30+00:00") == []


def test_service_logs_stamp_utc_with_its_zone_whatever_the_machine_zone(child_env):
    """flex-agent and openadr-ven log through log_to_stderr: on a machine in Phoenix time the stamps are still UTC,
    marked Z (logging's default printed the machine's local time without a zone)."""
    code = "import logging; from factory_twin.cli.options import log_to_stderr; log_to_stderr(); logging.info('hi')"
    run = subprocess.run([sys.executable, "-c", code], env={**child_env, "TZ": "America/Phoenix"},
                         capture_output=True, text=True, check=True)  # fmt: skip
    stamp, level, msg = run.stderr.split()
    assert (level, msg) == ("INFO", "hi") and stamp.endswith("Z") and not zoneless(run.stderr)
    t = datetime.fromisoformat(stamp)
    assert abs(t - datetime.now(UTC)) < timedelta(seconds=30)


def test_prometheus_clock_is_unix_time_and_steer_errors_carry_a_zone():
    f = twin.load_facility("emerald-phoenix")  # UTC-07:00
    tw = Twin(f, twin.load_scenario("srp-2025-05-04", f))
    tw.advance()
    body = Exporter(f).render(Readings.from_twin(tw, "uncapped")).decode()
    clock = float(re.search(r"^factory_twin_simulated_time_seconds (\S+)$", body, re.M).group(1))
    local = datetime.fromisoformat(str(np.datetime64(tw.time, "s")))
    assert datetime.fromtimestamp(clock, UTC) == (local + timedelta(hours=7)).replace(tzinfo=UTC)
    st = SteerState("https://127.0.0.1:8443")
    st.note_error("the controller failed")
    assert not zoneless(st.errors[-1]) and datetime.fromisoformat(st.errors[-1].split()[0]).tzinfo is not None
