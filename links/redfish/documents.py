"""The Redfish resources of the emulated facility, built on request from index arrays.

One aggregating service presents the whole facility: a Chassis and a ComputerSystem per compute node, the
node's GPUs as Processors, ``EnvironmentMetrics`` (v1_5_0) on each node's Chassis and each GPU, one Manager
(``ManagerType`` Service) whose ``DateTime`` is the twin's clock, and the SessionService. Documents are dicts
built when a request asks for one (a node's or a GPU's is a few microseconds of work); only the large
collections are rendered once and kept as bytes. Schema versions are the newest in the CSDL release the
service is validated against (DSP8010 2025.4).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from factory_twin.links.redfish.layout import NodeLayout
from factory_twin.links.redfish.limits import ControlView
from factory_twin.twin.scenario.timeparse import utc_offset
from numpy.typing import NDArray

ROOT = "/redfish/v1"
REDFISH_VERSION = "1.20.0"  # DSP0266 version of the assertions DMTF's protocol validator 1.3.2 checks
MANAGER_ID = "BMC"
TYPES = {
    "ServiceRoot": "#ServiceRoot.v1_20_0.ServiceRoot",
    "SessionService": "#SessionService.v1_2_0.SessionService",
    "SessionCollection": "#SessionCollection.SessionCollection",
    "Session": "#Session.v1_8_0.Session",
    "ChassisCollection": "#ChassisCollection.ChassisCollection",
    "Chassis": "#Chassis.v1_28_0.Chassis",
    "ComputerSystemCollection": "#ComputerSystemCollection.ComputerSystemCollection",
    "ComputerSystem": "#ComputerSystem.v1_27_0.ComputerSystem",
    "ProcessorCollection": "#ProcessorCollection.ProcessorCollection",
    "Processor": "#Processor.v1_22_0.Processor",
    "EnvironmentMetrics": "#EnvironmentMetrics.v1_5_0.EnvironmentMetrics",
    "ManagerCollection": "#ManagerCollection.ManagerCollection",
    "Manager": "#Manager.v1_24_0.Manager",
}
OK = {"State": "Enabled", "Health": "OK"}
Array = NDArray[np.float64]


def link(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def schema_url(odata_type: str) -> str:
    """The DMTF JSON schema of a type, for the ``Link: <...>; rel=describedby`` header."""
    name = odata_type.lstrip("#").rsplit(".", 1)[0]
    return f"http://redfish.dmtf.org/schemas/v1/{name}.json"


@dataclass(frozen=True)
class Readings:
    """What the twin shows at its latest plant step (arrays are not changed after publication)."""

    time: np.datetime64  # simulated local time
    node_power_w: Array  # whole node: its GPUs plus its share of the rack's other power
    gpu_power_w: Array
    gpu_temp_c: Array  # the rack's representative die


class Documents:
    """Resource documents for ``layout``'s facility; ``product`` names the service."""

    def __init__(self, layout: NodeLayout, product: str = "factory-twin BMC emulator") -> None:
        self.layout = layout
        f = layout.facility
        self.facility_name = f.spec.name
        self.product = product
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"factory-twin:redfish:{f.spec.name}"))
        self.gpu_tdp_w = f.tdp_w.astype(int)
        self.utc_offset = utc_offset(f.spec.site.utc_offset_h)

    # ------------------------------------------------------------------ URIs
    @staticmethod
    def chassis_uri(node_id: str) -> str:
        return f"{ROOT}/Chassis/{node_id}"

    @staticmethod
    def system_uri(node_id: str) -> str:
        return f"{ROOT}/Systems/{node_id}"

    def gpu_uri(self, node: int, slot: int) -> str:
        return f"{ROOT}/Systems/{self.layout.node_ids[node]}/Processors/GPU_{slot}"

    # ------------------------------------------------------------------ service-level
    def service_root(self) -> dict:
        return {
            "@odata.id": f"{ROOT}/",
            "@odata.type": TYPES["ServiceRoot"],
            "Id": "RootService",
            "Name": f"{self.facility_name} Redfish service",
            "RedfishVersion": REDFISH_VERSION,
            "UUID": self.uuid,
            "Product": self.product,
            "Vendor": "factory-twin",
            "ProtocolFeaturesSupported": {
                "ExpandQuery": {"ExpandAll": False, "Levels": False, "Links": False, "NoLinks": False},
                "FilterQuery": False,
                "SelectQuery": False,
                "OnlyMemberQuery": False,
                "ExcerptQuery": False,
            },
            "Chassis": link(f"{ROOT}/Chassis"),
            "Systems": link(f"{ROOT}/Systems"),
            "Managers": link(f"{ROOT}/Managers"),
            "SessionService": link(f"{ROOT}/SessionService"),
            "Links": {"Sessions": link(f"{ROOT}/SessionService/Sessions")},
        }

    @staticmethod
    def collection(uri: str, kind: str, name: str, members: list[str]) -> dict:
        return {
            "@odata.id": uri,
            "@odata.type": TYPES[kind],
            "Name": name,
            "Members@odata.count": len(members),
            "Members": [link(m) for m in members],
        }

    @cached_property
    def chassis_collection_bytes(self) -> bytes:
        uris = [self.chassis_uri(n) for n in self.layout.node_ids]
        return dump(self.collection(f"{ROOT}/Chassis", "ChassisCollection", "Chassis Collection", uris))

    @cached_property
    def system_collection_bytes(self) -> bytes:
        uris = [self.system_uri(n) for n in self.layout.node_ids]
        return dump(self.collection(f"{ROOT}/Systems", "ComputerSystemCollection", "Computer System Collection", uris))

    def manager_collection(self) -> dict:
        return self.collection(f"{ROOT}/Managers", "ManagerCollection", "Manager Collection", [self.manager_uri])

    @property
    def manager_uri(self) -> str:
        return f"{ROOT}/Managers/{MANAGER_ID}"

    def manager(self, readings: Readings) -> dict:
        t = np.datetime_as_string(np.datetime64(readings.time, "s"))
        return {
            "@odata.id": self.manager_uri,
            "@odata.type": TYPES["Manager"],
            "Id": MANAGER_ID,
            "Name": f"{self.facility_name} aggregating BMC service",
            "ManagerType": "Service",
            "Description": "Presents every compute node's BMC; DateTime is the twin's simulated clock.",
            "DateTime": f"{t}{self.utc_offset}",
            "DateTimeLocalOffset": self.utc_offset,
            "Status": OK,
        }

    def session_service(self, timeout_s: float) -> dict:
        return {
            "@odata.id": f"{ROOT}/SessionService",
            "@odata.type": TYPES["SessionService"],
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": True,
            "SessionTimeout": int(timeout_s),
            "Sessions": link(f"{ROOT}/SessionService/Sessions"),
            "Status": OK,
        }

    @staticmethod
    def session(session_id: str, username: str, created: str) -> dict:
        return {
            "@odata.id": f"{ROOT}/SessionService/Sessions/{session_id}",
            "@odata.type": TYPES["Session"],
            "Id": session_id,
            "Name": "User Session",
            "UserName": username,
            "SessionType": "Redfish",
            "CreatedTime": created,
        }

    # ------------------------------------------------------------------ per node
    def chassis(self, node: int) -> dict:
        nid = self.layout.node_ids[node]
        return {
            "@odata.id": self.chassis_uri(nid),
            "@odata.type": TYPES["Chassis"],
            "Id": nid,
            "Name": f"Compute node {nid}",
            "ChassisType": "RackMount",
            "Model": self.layout.gpu_model[node],
            "PowerState": "On",
            "Status": OK,
            "EnvironmentMetrics": link(f"{self.chassis_uri(nid)}/EnvironmentMetrics"),
            "Links": {"ComputerSystems": [link(self.system_uri(nid))], "ManagedBy": [link(self.manager_uri)]},
        }

    def system(self, node: int) -> dict:
        nid = self.layout.node_ids[node]
        return {
            "@odata.id": self.system_uri(nid),
            "@odata.type": TYPES["ComputerSystem"],
            "Id": nid,
            "Name": f"Compute node {nid}",
            "SystemType": "Physical",
            "PowerState": "On",
            "Status": OK,
            "Processors": link(f"{self.system_uri(nid)}/Processors"),
            "Links": {"Chassis": [link(self.chassis_uri(nid))], "ManagedBy": [link(self.manager_uri)]},
        }

    def processors(self, node: int) -> dict:
        nid = self.layout.node_ids[node]
        uris = [self.gpu_uri(node, k) for k in range(int(self.layout.node_gpus[node]))]
        return self.collection(f"{self.system_uri(nid)}/Processors", "ProcessorCollection", "Processors", uris)

    def processor(self, node: int, slot: int) -> dict:
        uri = self.gpu_uri(node, slot)
        rack = int(self.layout.node_rack[node])
        return {
            "@odata.id": uri,
            "@odata.type": TYPES["Processor"],
            "Id": f"GPU_{slot}",
            "Name": f"GPU {slot} of {self.layout.node_ids[node]}",
            "ProcessorType": "GPU",
            "Manufacturer": "NVIDIA",
            "Model": self.layout.gpu_model[node],
            "TDPWatts": int(self.gpu_tdp_w[rack]),
            "Status": OK,
            "EnvironmentMetrics": link(f"{uri}/EnvironmentMetrics"),
            "Links": {"Chassis": link(self.chassis_uri(self.layout.node_ids[node]))},
        }

    # ------------------------------------------------------------------ limits
    @staticmethod
    def power_limit(view: ControlView) -> dict:
        return {
            "SetPoint": round(view.setpoint_w, 3),
            "AllowableMin": round(view.allowable_min_w, 3),
            "AllowableMax": round(view.allowable_max_w, 3),
            "DefaultSetPoint": round(view.default_w, 3),
            "ControlMode": view.mode,
        }

    def node_metrics(self, node: int, view: ControlView, readings: Readings) -> dict:
        nid = self.layout.node_ids[node]
        return {
            "@odata.id": f"{self.chassis_uri(nid)}/EnvironmentMetrics",
            "@odata.type": TYPES["EnvironmentMetrics"],
            "@odata.etag": view.etag,
            "Id": "EnvironmentMetrics",
            "Name": f"Environment metrics of {nid}",
            "PowerWatts": {"Reading": round(float(readings.node_power_w[node]), 1)},
            "PowerLimitWatts": self.power_limit(view),
        }

    def gpu_metrics(self, node: int, slot: int, gpu: int, view: ControlView, readings: Readings) -> dict:
        return {
            "@odata.id": f"{self.gpu_uri(node, slot)}/EnvironmentMetrics",
            "@odata.type": TYPES["EnvironmentMetrics"],
            "@odata.etag": view.etag,
            "Id": "EnvironmentMetrics",
            "Name": f"Environment metrics of GPU {slot} of {self.layout.node_ids[node]}",
            "PowerWatts": {"Reading": round(float(readings.gpu_power_w[gpu]), 1)},
            "TemperatureCelsius": {"Reading": round(float(readings.gpu_temp_c[gpu]), 1)},
            "PowerLimitWatts": self.power_limit(view),
        }

    # ------------------------------------------------------------------ OData and OpenAPI
    @cached_property
    def metadata_xml(self) -> bytes:
        refs = "".join(
            f'  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/{ns}_v1.xml">\n'
            f'    <edmx:Include Namespace="{ns}"/>\n'
            + (f'    <edmx:Include Namespace="{ver}"/>\n' if ver != ns else "")
            + "  </edmx:Reference>\n"
            for ns, ver in sorted(_namespaces())
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
            f"{refs}"
            "  <edmx:DataServices>\n"
            '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
            f'      <EntityContainer Name="Service" Extends="{_version(TYPES["ServiceRoot"])}.ServiceContainer"/>\n'
            "    </Schema>\n"
            "  </edmx:DataServices>\n"
            "</edmx:Edmx>\n"
        ).encode()

    @staticmethod
    def odata() -> dict:
        names = ("Chassis", "Systems", "Managers", "SessionService")
        return {
            "@odata.context": f"{ROOT}/$metadata",
            "value": [{"name": "Service", "kind": "Singleton", "url": f"{ROOT}/"}]
            + [{"name": n, "kind": "Singleton", "url": f"{ROOT}/{n}"} for n in names],
        }

    @cached_property
    def openapi_yaml(self) -> bytes:
        return openapi_document(self.facility_name).encode()


def _version(odata_type: str) -> str:
    """``#Chassis.v1_28_0.Chassis`` -> ``Chassis.v1_28_0``."""
    return odata_type.lstrip("#").rsplit(".", 1)[0]


def _namespaces() -> set[tuple[str, str]]:
    out = {("Resource", "Resource"), ("Message", "Message.v1_3_0"), ("Control", "Control.v1_7_0")}
    out |= {("Sensor", "Sensor.v1_12_0")}
    for t in TYPES.values():
        ver = _version(t)
        out.add((ver.split(".")[0], ver))
    return out


# (path template, operations, DMTF schema file and version); the operations the service answers
OPENAPI_PATHS = (
    ("/redfish/v1", ("get",), "ServiceRoot.v1_20_0", "ServiceRoot"),
    ("/redfish/v1/SessionService", ("get",), "SessionService.v1_2_0", "SessionService"),
    ("/redfish/v1/SessionService/Sessions", ("get", "post"), "SessionCollection", "SessionCollection"),
    ("/redfish/v1/SessionService/Sessions/{SessionId}", ("get", "delete"), "Session.v1_8_0", "Session"),
    ("/redfish/v1/Chassis", ("get",), "ChassisCollection", "ChassisCollection"),
    ("/redfish/v1/Chassis/{ChassisId}", ("get",), "Chassis.v1_28_0", "Chassis"),
    (
        "/redfish/v1/Chassis/{ChassisId}/EnvironmentMetrics",
        ("get", "patch"),
        "EnvironmentMetrics.v1_5_0",
        "EnvironmentMetrics",
    ),
    ("/redfish/v1/Systems", ("get",), "ComputerSystemCollection", "ComputerSystemCollection"),
    ("/redfish/v1/Systems/{ComputerSystemId}", ("get",), "ComputerSystem.v1_27_0", "ComputerSystem"),
    ("/redfish/v1/Systems/{ComputerSystemId}/Processors", ("get",), "ProcessorCollection", "ProcessorCollection"),
    ("/redfish/v1/Systems/{ComputerSystemId}/Processors/{ProcessorId}", ("get",), "Processor.v1_22_0", "Processor"),
    (
        "/redfish/v1/Systems/{ComputerSystemId}/Processors/{ProcessorId}/EnvironmentMetrics",
        ("get", "patch"),
        "EnvironmentMetrics.v1_5_0",
        "EnvironmentMetrics",
    ),
    ("/redfish/v1/Managers", ("get",), "ManagerCollection", "ManagerCollection"),
    ("/redfish/v1/Managers/{ManagerId}", ("get",), "Manager.v1_24_0", "Manager"),
)


def openapi_document(facility_name: str) -> str:
    """The service's OpenAPI 3.0 document (YAML): its paths, each referring to DMTF's published schema."""
    lines = [
        "openapi: 3.0.1",
        "info:",
        f"  title: {json.dumps(facility_name + ' Redfish service')}",
        "  description: factory-twin's emulated BMCs (one aggregating service); schemas are DMTF's (DSP8010).",
        f"  version: {json.dumps(REDFISH_VERSION)}",
        "paths:",
    ]
    for path, ops, schema, typ in OPENAPI_PATHS:
        ref = f"http://redfish.dmtf.org/schemas/v1/{schema}.yaml#/components/schemas/{schema.replace('.', '_')}_{typ}"
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        lines.append(f"  {path}:")
        if params:
            lines.append("    parameters:")
            for p in params:
                lines += [f"    - name: {p}", "      in: path", "      required: true", "      schema:"]
                lines.append("        type: string")
        for op in ops:
            lines.append(f"    {op}:")
            if op in ("patch", "post"):
                lines += ["      requestBody:", "        required: true", *_json_content(ref, 8)]
            code = {"post": "201", "delete": "204"}.get(op, "200")
            lines += ["      responses:", f"        '{code}':"]
            if op == "delete":
                lines.append("          description: Deleted")
            else:
                lines += ["          description: The resource", *_json_content(ref, 10)]
    return "\n".join(lines) + "\n"


def _json_content(ref: str, indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}content:", f"{pad}  application/json:", f"{pad}    schema:", f"{pad}      $ref: '{ref}'"]


def dump(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


__all__ = ["ROOT", "TYPES", "Documents", "Readings", "dump", "link", "openapi_document", "schema_url"]
