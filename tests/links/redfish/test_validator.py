"""DMTF's Redfish Service Validator against the emulated BMCs: 0 FAIL, offline (schemas from shared/data).

Run in-process (its ``SystemUnderTest``, pinned to redfish_service_validator 3.1.8 in the test extras) over
HTTPS with session authentication, every resource of one GB200 NVL72 rack reached from the service root. The
schema files are read from the CSDL folder only (``parse_schema_files``: what ``--skipschema
--schema_directory`` does on the command line), so nothing is fetched or written.
"""

from __future__ import annotations

import logging

import pytest


def run_validator(url: str, user: str, password: str, csdl, log_dir) -> tuple[dict, dict[str, dict[str, str]]]:
    redfish = pytest.importorskip("redfish")
    rsv = pytest.importorskip("redfish_service_validator")
    from redfish_service_validator import logger, metadata
    from redfish_service_validator.system_under_test import SystemUnderTest

    assert rsv is not None
    logger.logger = redfish.redfish_logger(str(log_dir / "rsv.log"), "%(message)s", logging.INFO)
    sut = SystemUnderTest(url, user, password, None, "Session", None, None, None, ["LogEntry", "20"], False)
    metadata.parse_schema_files(str(csdl))
    sut.validate(None, "/redfish/v1/", "/redfish/v1/")
    sut.logout()
    counts = {"PASS": sut.pass_count, "WARN": sut.warn_count, "FAIL": sut.fail_count, "NOT TESTED": sut.skip_count}
    results = {uri: {prop: r["Result"] for prop, r in res["Results"].items()} for uri, res in sut._resources.items()}
    return counts, results


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_service_validator_finds_no_failure(bmc, passwords, csdl, tmp_path, capsys):
    counts, results = run_validator(bmc.url, "steer", passwords["steer"], csdl, tmp_path)
    problems = [(uri, prop, r) for uri, res in results.items() for prop, r in res.items() if r in ("FAIL", "WARN")]
    with capsys.disabled():
        print(f"\nRedfish Service Validator 3.1.8 on one NVL72 rack: {counts}, {len(results)} resources")
    assert counts["FAIL"] == 0, problems[:10]
    assert counts["WARN"] == 0, problems[:10]
    # every resource was reached: the root, the Chassis, Systems and Managers collections, the manager, the
    # SessionService, its Sessions and the validator's session; per node its Chassis and EnvironmentMetrics, its
    # System and Processors, 4 GPUs and their EnvironmentMetrics
    assert len(results) == 8 + bmc.emu.layout.n_nodes * (4 + 2 * 4)
    metrics = [res for uri, res in results.items() if uri.endswith("/EnvironmentMetrics")]
    assert len(metrics) == bmc.emu.layout.n_nodes * 5
    for res in metrics:  # the power reading and the limit's excerpt were checked against the schema
        for prop in ("/PowerWatts/Reading", "/PowerLimitWatts/SetPoint", "/PowerLimitWatts/AllowableMax"):
            assert res[prop] == "PASS", prop
