"""DPS topology interchange: a facility's one-line diagram to a DPS import file and back.

Mapping (what both can express is carried across unchanged; what one side cannot express is listed in the
returned report, never dropped silently):

============================  ======================================================================
twin                          DPS
============================  ======================================================================
feed                          ``PowerDomain`` without a parent
switchboard, transformer,     ``PowerDistribution`` (import: ``switchboard`` when it feeds elements,
UPS, busway, PDU              ``pdu`` when it feeds racks; a ``PowerDomain`` below another: switchboard)
rating x continuous derate    ``OperatingLimit.PowerValue`` [W] (the continuous limit DPS enforces),
                              with ``PowerFactor`` for kVA-rated elements (import: kVA = W / PF)
``dps_model``                 ``Model``
rack                          a ``PowerSupply`` (its power shelf: PSU count x rating) named as
                              :func:`twin.facility.nodes.rack_names`, parent of its nodes
compute node                  ``ComputerSystem`` (``Model`` the rack type's ``dps_model``), named as
                              :func:`twin.facility.nodes.nodes`
A/B parents                   the child listed under both parents (DPS splits its power evenly)
node policies                 ``Policies`` (``ElementType`` Node/GPU/CPU/Memory, ``PowerLimit.Watts``)
diagram name                  ``Topology.Name``
============================  ======================================================================

Not expressible in DPS (export reports them): element kinds beyond feed/distribution, protective devices and
trip curves, loss models, parallel units, the continuous derate apart from the limit, redundancy groups and
path roles, mechanical loads. Not kept by the twin (import reports them): ``Redfish``, ``TelemetryId``,
legacy ``Policy``, ``StaticLoad``, ``FeedTag``, percentage policy limits, rack and node names (the twin
names them itself), power-shelf limits, undocumented keys, entities outside the topology. On import the
DPS racks (node groups under one parent set, or the power shelf above them) map in order onto the
facility's racks, which must match in number and type.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from factory_twin.links.dps.schema import DpsError, DpsFile
from factory_twin.models.units import KW
from factory_twin.twin.facility.assembly import Facility, rack_catalog
from factory_twin.twin.facility.nodes import nodes, rack_names
from factory_twin.twin.facility.topology_spec import KINDS, Element, NodePolicy, TopologySpec

POLICY_FIELDS = {"Node": "node_w", "GPU": "gpu_w", "CPU": "cpu_w", "Memory": "memory_w"}


def _count(label: str, names: list[str]) -> str:
    shown = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
    return f"{label}: {len(names)} ({shown})"


# ---------------------------------------------------------------------------------------------- export
def export_topology(f: Facility) -> tuple[dict, list[str]]:
    """The facility's one-line diagram as a DPS import file (a JSON-ready dict), and what DPS cannot express."""
    topo = f.topology
    spec_topo = f.spec.topology
    catalog = rack_catalog()
    racks, nd = rack_names(f), nodes(f)
    entities: list[dict] = []
    for e in range(topo.n):
        ent = {"Name": topo.names[e], "Type": "PowerDomain" if KINDS[topo.kind[e]] == "feed" else "PowerDistribution"}
        if topo.dps_model[e]:
            ent["Model"] = topo.dps_model[e]
        limit = {"PowerValue": {"Value": float(topo.continuous_limit_w[e]), "Type": "W"}}
        if topo.kva[e]:
            limit["PowerFactor"] = float(topo.power_factor[e])
        ent["OperatingLimit"] = limit
        entities.append(ent)
    for r in range(f.n_racks):
        shelf = float(f.psu_count[r] * f.psu_rating_w[r])
        entities.append({"Name": racks[r], "Type": "PowerSupply",
                         "OperatingLimit": {"PowerValue": {"Value": shelf, "Type": "W"}}})  # fmt: skip
    models = [catalog[h.rack_type].get("dps_model") for h in f.spec.halls]
    for k in range(nd.n):
        ent = {"Name": nd.names[k], "Type": "ComputerSystem"}
        if models[nd.hall[k]]:
            ent["Model"] = models[nd.hall[k]]
        entities.append(ent)
    children: dict[int, list[str]] = defaultdict(list)
    for c, p in zip(topo.edge_child.tolist(), topo.edge_parent.tolist(), strict=True):
        children[p].append(topo.names[c])
    for r, p in zip(topo.rack_edge_rack.tolist(), topo.rack_edge_parent.tolist(), strict=True):
        children[p].append(racks[r])
    entries = [{"Name": topo.names[e], "Children": children[e]} for e in range(topo.n)]
    node_lists: dict[int, list[str]] = defaultdict(list)
    for k in range(nd.n):
        node_lists[int(nd.rack[k])].append(nd.names[k])
    entries += [{"Name": racks[r], "Children": node_lists[r]} for r in range(f.n_racks)]
    doc = {
        "Entities": entities,
        "Topology": {"Name": (spec_topo.name if spec_topo and spec_topo.name else f.spec.name), "Entities": entries},
    }
    policies = spec_topo.policies if spec_topo else []
    if policies:
        doc["Policies"] = [
            {"Name": p.name, "Limits": [{"ElementType": t, "PowerLimit": {"Watts": getattr(p, k)}}
                                        for t, k in POLICY_FIELDS.items() if getattr(p, k) is not None]}
            for p in policies
        ]  # fmt: skip
    return doc, _export_report(f)


def _export_report(f: Facility) -> list[str]:
    topo = f.topology
    names = list(topo.names)
    lost = []

    def where(mask) -> list[str]:
        return [names[i] for i in np.flatnonzero(mask)]

    kinds = np.array([KINDS[k] for k in topo.kind])
    has_children = np.isin(np.arange(topo.n), topo.edge_parent)
    back = np.where(kinds == "feed", "feed", np.where(has_children, "switchboard", "pdu"))  # the import's rule
    for k in np.unique(kinds[kinds != back]):
        lost.append(_count(f"element kind {str(k)!r} (a PowerDistribution; imports as {str(back[kinds == k][0])!r})",
                           where((kinds == k) & (kinds != back))))  # fmt: skip
    if np.any(topo.trip.characteristic > 0):
        lost.append(_count("protective devices and trip curves", where(topo.trip.characteristic > 0)))
    lossy = (np.nan_to_num(topo.p0_w) > 0) | (np.nan_to_num(topo.pk_w) > 0) | (np.nan_to_num(topo.c0) > 0)
    lossy |= (np.nan_to_num(topo.c1) > 0) | (np.nan_to_num(topo.c2) > 0) | (topo.loss_fraction > 0)
    if lossy.any():
        lost.append(_count("loss models (transformer P0/Pk, UPS c0-c2, I^2R fraction)", where(lossy)))
    if np.any(topo.units > 1):
        lost.append(_count("parallel units (modules)", where(topo.units > 1)))
    if np.any(topo.derate < 1):
        lost.append(_count("continuous derate (OperatingLimit is rating x derate; the rating itself is lost)",
                           where(topo.derate < 1)))  # fmt: skip
    red = [n for n, g in zip(names, topo.redundancy, strict=True) if g] + [
        n for n, p in zip(names, topo.path, strict=True) if p and not topo.redundancy[topo.index[n]]
    ]
    if red:
        lost.append(_count("redundancy groups and path roles", red))
    if topo.explicit and f.spec.topology.mechanical:
        lost.append(_count("mechanical (cooling) loads: DPS has no such load", list(topo.mech_names)))
    return lost


# ---------------------------------------------------------------------------------------------- import
def import_topology(doc: DpsFile, f: Facility, unknown: list[str] = ()) -> tuple[TopologySpec, list[str]]:
    """A DPS file's power tree as facility ``f``'s ``[topology]`` (its racks mapped in order onto ``f``'s) and what the
    twin does not keep. Raises :class:`DpsError` when the file's racks do not fit the facility."""
    if doc.Topology is None:
        raise DpsError("<dps>", [("Topology", "the file holds no Topology to import")])
    ents = {e.Name: e for e in doc.Entities}
    children = {te.Name: list(te.Children) for te in doc.Topology.Entities}
    parents: dict[str, list[str]] = defaultdict(list)
    for p, cs in children.items():
        for c in cs:
            parents[c].append(p)
    in_tree = set(children) | set(parents)
    is_node = {n: ents[n].Type == "ComputerSystem" for n in in_tree}
    shelves = {n for n in in_tree if not is_node[n] and ents[n].Type == "PowerSupply" and children.get(n)
               and all(is_node[c] for c in children[n])}  # fmt: skip
    errors: list[tuple[str, str]] = []
    for n in in_tree:
        if is_node[n] and children.get(n):
            errors.append(("Topology.Entities", f"ComputerSystem {n!r} has children; only power entities do"))
    racks = _dps_racks(doc, children, parents, is_node, shelves, ents, f, errors)
    if errors:
        raise DpsError("<dps>", errors)
    sel = _selectors(f)
    fed: dict[str, list[str]] = defaultdict(list)
    for r, (_, rack_parents, _) in enumerate(racks):
        for p in rack_parents:
            fed[p].append(sel[r])
    order = [te.Name for te in doc.Topology.Entities]
    order += [n for n in sorted(in_tree) if n not in set(order)]
    elements, notes = [], []
    for n in order:
        if is_node[n] or n in shelves:
            continue
        e = ents[n]
        el_parents = [p for p in parents.get(n, []) if p not in shelves]
        el_children = [c for c in children.get(n, []) if not is_node[c] and c not in shelves]
        if not el_parents:
            kind = "feed"
            if e.Type != "PowerDomain":
                notes.append(f"{n!r}: a {e.Type} without a parent becomes a feed")
        elif e.Type == "PowerDomain" or el_children:
            kind = "switchboard"
        else:
            kind = "pdu"
        fields = {"name": n, "kind": kind, "parents": el_parents, "racks": fed.get(n, []), "dps_model": e.Model}
        lim = e.limit
        if lim is not None:
            w = lim.PowerValue.Value
            if lim.PowerFactor is not None:
                fields |= {"rating_kva": w / lim.PowerFactor / KW, "power_factor": lim.PowerFactor}
            else:
                fields["rating_kw"] = w / KW
        elements.append(Element.model_validate(fields))
    policies, lost = [], []
    for p in doc.Policies:
        watts = {POLICY_FIELDS[lim.ElementType]: lim.PowerLimit.Watts for lim in p.Limits if lim.PowerLimit.Watts}
        pct = [lim.ElementType for lim in p.Limits if lim.PowerLimit.Percentage is not None]
        if pct:
            lost.append(f"policy {p.Name!r}: percentage limits of {pct} (the twin keeps watts)")
        if watts:
            policies.append(NodePolicy(name=p.Name, **watts))
    spec = TopologySpec(name=doc.Topology.Name, elements=elements, policies=policies)
    return spec, _import_report(doc, in_tree, shelves, racks, f, unknown) + lost + notes


def _dps_racks(doc, children, parents, is_node, shelves, ents, f: Facility, errors) -> list[tuple]:
    """The file's racks in order: (node names, parent entities of the rack, its power shelf or None). A rack is a
    power shelf (``PowerSupply`` feeding only nodes) or, without one, the nodes under the same parents, split into
    racks of the rack type's node count."""
    catalog = rack_catalog()
    by_model = {v.get("dps_model"): k for k, v in catalog.items() if v.get("dps_model")}
    seen: dict[tuple[str, ...], list[str]] = {}
    order: list[tuple[str, ...]] = []
    for te in doc.Topology.Entities:
        for c in te.Children:
            if not is_node[c]:
                continue
            key = (te.Name,) if te.Name in shelves else tuple(sorted(parents[c]))
            if key not in seen:
                seen[key] = []
                order.append(key)
            if c not in seen[key]:
                seen[key].append(c)
    racks = []
    for key in order:
        node_names = seen[key]
        rack_parents = parents[key[0]] if key[0] in shelves else list(key)
        model = ents[node_names[0]].Model
        rtype = by_model.get(model)
        if rtype is None:
            errors.append(("Entities", f"node {node_names[0]!r}: model {model!r} is no rack type's dps_model "
                                       f"(known: {sorted(by_model)})"))  # fmt: skip
            continue
        per_rack = int(catalog[rtype]["gpus"] // catalog[rtype]["gpus_per_node"])
        if key[0] in shelves:
            racks.append((node_names, rack_parents, rtype, key[0]))
            continue
        if len(node_names) % per_rack:
            errors.append(("Topology.Entities", f"{len(node_names)} {model} nodes under {list(key)} do not fill "
                                                f"racks of {per_rack}"))  # fmt: skip
            continue
        for i in range(0, len(node_names), per_rack):
            racks.append((node_names[i : i + per_rack], rack_parents, rtype, None))
    if not errors and len(racks) != f.n_racks:
        errors.append(("Topology.Entities", f"{len(racks)} racks in the file, {f.n_racks} in facility {f.spec.name!r}"))
    elif not errors:
        want = [f.spec.halls[h].rack_type for h in f.rack_hall]
        for r, (node_names, _, rtype, _) in enumerate(racks):
            if rtype != want[r]:
                errors.append(("Topology.Entities", f"rack {r + 1} (nodes from {node_names[0]!r}) is {rtype}; the "
                                                    f"facility's rack {_selectors(f)[r]} is {want[r]}"))  # fmt: skip
                break
    return [(n, p, shelf) for n, p, _, shelf in racks]


def _selectors(f: Facility) -> list[str]:
    first = {h: int(np.flatnonzero(f.rack_hall == h)[0]) for h in range(len(f.hall_names))}
    return [f"{f.hall_names[h]}:{r - first[h]}" for r, h in enumerate(f.rack_hall.tolist())]


def _import_report(doc: DpsFile, in_tree, shelves, racks, f: Facility, unknown) -> list[str]:
    lost = []
    power = [e for e in doc.Entities if e.Name in in_tree and e.Type != "ComputerSystem" and e.Name not in shelves]

    def names(pred) -> list[str]:
        return [e.Name for e in doc.Entities if e.Name in in_tree and pred(e)]

    for label, pred in (
        ("Redfish endpoints", lambda e: e.Redfish is not None),
        ("TelemetryId", lambda e: e.TelemetryID is not None or e.TelemetryId is not None),
        ("legacy Policy names", lambda e: e.Policy is not None),
        ("StaticLoad (fixed unmanaged loads are not modelled)", lambda e: e.StaticLoad is not None),
    ):
        found = names(pred)
        if found:
            lost.append(_count(label, found))
    tags = [te.Name for te in doc.Topology.Entities if te.FeedTag]
    if tags:
        lost.append(_count("FeedTag", tags))
    outside = [e.Name for e in doc.Entities if e.Name not in in_tree]
    if outside:
        lost.append(_count("entities outside the topology", outside))
    node_names = [n for ns, _, _ in racks for n in ns]
    if node_names != list(nodes(f).names) or (shelves and sorted(shelves) != sorted(rack_names(f))):
        lost.append(f"rack and node names: {len(racks)} racks and {len(node_names)} nodes take the facility's names "
                    "(twin.facility.nodes)")  # fmt: skip
    shelf_w = f.psu_count * f.psu_rating_w
    ents = {e.Name: e for e in doc.Entities}
    differ = [shelf for r, (_, _, shelf) in enumerate(racks) if shelf is not None and ents[shelf].limit is not None
              and abs(ents[shelf].limit.PowerValue.Value - shelf_w[r]) > 1e-6]  # fmt: skip
    if differ:
        lost.append(_count("power-shelf limits unlike the rack catalog's PSUs (the twin uses the catalog)", differ))
    if unknown:
        lost.append(_count("keys the DPS documentation does not define", list(unknown)))
    if not power:
        lost.append("no power entities: nothing above the racks")
    return lost
