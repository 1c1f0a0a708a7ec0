"""The Redfish service as an ASGI application: routing, authentication, ETags, errors (DSP0266).

Without credentials a client may read only what the specification makes public: ``/redfish``, the service
root, ``$metadata``, the OData service document and the OpenAPI document; and ``POST`` the Sessions collection
to log in. Everything else needs a session token (``X-Auth-Token``) or HTTP Basic credentials, and a 401 with
``WWW-Authenticate`` answers their absence. Credentials are accepted over HTTPS only; a plain-HTTP service
refuses them (403) unless it was built with ``allow_http_auth`` (a test option).

Limit resources (``EnvironmentMetrics`` of a node's Chassis and of each GPU) carry an ``ETag`` and accept
``PATCH`` with ``If-Match`` (412 on a mismatch, nothing written). Errors are Redfish error bodies with Base
registry messages. Responses carry ``OData-Version: 4.0`` and ``Cache-Control: no-store``; resources a
``Link: <schema>; rel=describedby`` and an ``Allow`` header.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from factory_twin.links.redfish.auth import AuthError, Principal, SessionStore
from factory_twin.links.redfish.documents import ROOT, Documents, Readings, dump, schema_url
from factory_twin.links.redfish.limits import ControlView, EtagMismatchError, LimitTable
from factory_twin.links.redfish.messages import Message, error_body
from factory_twin.links.redfish.patch import MAX_BODY_BYTES, BodyError, limit_change, parse_if_match, parse_json_object

log = logging.getLogger(__name__)

ALLOWED = {
    "redfish": ("GET", "HEAD"),
    "root": ("GET", "HEAD"),
    "metadata": ("GET", "HEAD"),
    "odata": ("GET", "HEAD"),
    "openapi": ("GET", "HEAD"),
    "session_service": ("GET", "HEAD"),
    "sessions": ("GET", "HEAD", "POST"),
    "sessions_members": ("POST",),
    "session": ("GET", "HEAD", "DELETE"),
    "chassis_collection": ("GET", "HEAD"),
    "chassis": ("GET", "HEAD"),
    "node_metrics": ("GET", "HEAD", "PATCH"),
    "systems": ("GET", "HEAD"),
    "system": ("GET", "HEAD"),
    "processors": ("GET", "HEAD"),
    "processor": ("GET", "HEAD"),
    "gpu_metrics": ("GET", "HEAD", "PATCH"),
    "managers": ("GET", "HEAD"),
    "manager": ("GET", "HEAD"),
}
PUBLIC = frozenset({"redfish", "root", "metadata", "odata", "openapi"})
LOGIN = frozenset({"sessions", "sessions_members"})
JSON = "application/json; charset=utf-8"
GPU_ID = re.compile(r"GPU_(0|[1-9]\d{0,3})")
HTTPS_ONLY = "Credentials are accepted over HTTPS only: connect with https://."


@dataclass(frozen=True)
class Route:
    kind: str
    node: int = -1
    slot: int = -1
    session_id: str = ""


@dataclass(frozen=True)
class Request:
    """What the service reads of an HTTP request (header names lower case)."""

    method: str
    path: str
    query: str = ""
    https: bool = True
    headers: dict[str, str] | None = None
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return (self.headers or {}).get(name)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] | None = None
    content_type: str = JSON


class RedfishService:
    """ASGI app over a facility's :class:`Documents`, :class:`LimitTable` and :class:`SessionStore`.

    ``readings()`` returns the twin's latest :class:`Readings`; ``on_request(principal)`` is called for every
    authenticated request and ``on_write(principal)`` after every accepted limit write (the emulator's
    watchdog lease).
    """

    def __init__(
        self,
        docs: Documents,
        limits: LimitTable,
        sessions: SessionStore,
        readings: Callable[[], Readings],
        on_request: Callable[[Principal], None] | None = None,
        on_write: Callable[[Principal], None] | None = None,
        allow_http_auth: bool = False,
    ) -> None:
        self.docs, self.limits, self.sessions, self.readings = docs, limits, sessions, readings
        self.layout = docs.layout
        self.on_request = on_request or (lambda p: None)
        self.on_write = on_write or (lambda p: None)
        self.allow_http_auth = allow_http_auth
        self.requests = 0
        self.patches = 0

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """ASGI entry point (uvicorn runs it: see :mod:`server`)."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        chunks, size = [], 0
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES or not msg.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope["query_string"].decode("latin-1")
        req = Request(scope["method"], scope["path"], query, scope["scheme"] == "https", headers, b"".join(chunks))
        status, out_headers, body = self.respond(req)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def respond(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body for ``req``; never raises (a bug answers 500 and is logged)."""
        try:
            resp = self.handle(req)
        except Exception:  # never a traceback to the client; the log keeps it
            log.exception("redfish: internal error on %s %s", req.method, req.path)
            resp = _error(500, Message("InternalError"))
        self.requests += 1
        headers = [("OData-Version", "4.0"), ("Cache-Control", "no-store"), *(resp.headers or [])]
        if resp.body or req.method != "HEAD":
            headers.append(("Content-Type", resp.content_type))
        if req.https:
            headers.append(("Strict-Transport-Security", "max-age=31536000"))
        body = b"" if req.method == "HEAD" else resp.body
        headers.append(("Content-Length", str(len(body))))
        return resp.status, headers, body

    def handle(self, req: Request) -> Response:
        version = req.header("odata-version")
        if version is not None and version.strip() != "4.0":
            return _error(412, Message("HeaderInvalid", (f"OData-Version: {version}",)))
        method = req.method
        route = self.route(req.path or "/")
        public = route is not None and (
            (route.kind in PUBLIC and method in ("GET", "HEAD")) or (route.kind in LOGIN and method == "POST")
        )
        principal = None
        if not public:
            token, authz = req.header("x-auth-token"), req.header("authorization")
            if (token or authz) and not req.https and not self.allow_http_auth:
                return _error(403, Message("GeneralError", resolution=HTTPS_ONLY))
            try:
                principal = self.sessions.authenticate(token, authz)
            except AuthError:
                resp = _error(401, Message("NoValidSession"))
                resp.headers = [("WWW-Authenticate", 'Basic realm="factory-twin", charset="UTF-8"')]
                return resp
            self.on_request(principal)
        if route is None:
            return _error(404, Message("ResourceNotFound", ("Resource", req.path)))
        allowed = ALLOWED[route.kind]
        if method not in allowed:
            resp = _error(405, Message("OperationNotAllowed"))
            resp.headers = [("Allow", ", ".join(allowed))]
            return resp
        if len(req.body) > MAX_BODY_BYTES:
            return _error(413, Message("PayloadTooLarge"))
        if any(k.startswith("$") for k, _ in parse_qsl(req.query, keep_blank_values=True)):
            return _error(501, Message("QueryNotSupported"))
        if method == "POST":
            return self.login(req)
        if method == "DELETE":
            return self.logout(route, principal)
        if method == "PATCH":
            return self.patch(route, principal, req)
        return self.get(route, principal)

    # ------------------------------------------------------------------ routing
    def route(self, path: str) -> Route | None:
        if path in ("/redfish", "/redfish/"):
            return Route("redfish")
        if not path.startswith(ROOT):
            return None
        rest = path[len(ROOT) :].strip("/")
        parts = rest.split("/") if rest else []
        n = len(parts)
        if n == 0:
            return Route("root")
        head = parts[0]
        if n == 1:
            kind = {
                "$metadata": "metadata",
                "odata": "odata",
                "openapi.yaml": "openapi",
                "SessionService": "session_service",
                "Chassis": "chassis_collection",
                "Systems": "systems",
                "Managers": "managers",
            }.get(head)
            return Route(kind) if kind else None
        if head == "SessionService" and parts[1] == "Sessions":
            if n == 2:
                return Route("sessions")
            if n == 3:
                return Route("sessions_members") if parts[2] == "Members" else Route("session", session_id=parts[2])
            return None
        if head == "Managers":
            return Route("manager") if n == 2 and parts[1] == self.docs.manager_uri.rsplit("/", 1)[1] else None
        node = self.layout.node_index.get(parts[1], -1) if head in ("Chassis", "Systems") else -1
        if node < 0:
            return None
        if head == "Chassis":
            if n == 2:
                return Route("chassis", node)
            return Route("node_metrics", node) if n == 3 and parts[2] == "EnvironmentMetrics" else None
        if n == 2:
            return Route("system", node)
        if parts[2] != "Processors":
            return None
        if n == 3:
            return Route("processors", node)
        m = GPU_ID.fullmatch(parts[3])
        if m is None or int(m.group(1)) >= self.layout.node_gpus[node]:
            return None
        slot = int(m.group(1))
        if n == 4:
            return Route("processor", node, slot)
        if n == 5 and parts[4] == "EnvironmentMetrics":
            return Route("gpu_metrics", node, slot)
        return None

    # ------------------------------------------------------------------ GET
    def get(self, route: Route, principal: Principal | None) -> Response:
        d, k = self.docs, route.kind
        if k == "redfish":
            return Response(200, dump({"v1": f"{ROOT}/"}))
        if k == "metadata":
            return Response(200, d.metadata_xml, content_type="application/xml")
        if k == "openapi":
            return Response(200, d.openapi_yaml, content_type="application/yaml")
        if k == "chassis_collection":
            return _resource(d.chassis_collection_bytes, "#ChassisCollection.ChassisCollection", k)
        if k == "systems":
            return _resource(d.system_collection_bytes, "#ComputerSystemCollection.ComputerSystemCollection", k)
        etag = None
        if k == "root":
            doc = d.service_root()
        elif k == "odata":
            return Response(200, dump(d.odata()))
        elif k == "session_service":
            doc = d.session_service(self.sessions.timeout_s)
        elif k == "sessions":
            doc = self._sessions(principal)
        elif k == "session":
            s = self._session(route, principal)
            if isinstance(s, Response):
                return s
            doc = s
        elif k == "managers":
            doc = d.manager_collection()
        elif k == "manager":
            doc = d.manager(self.readings())
        elif k == "chassis":
            doc = d.chassis(route.node)
        elif k == "system":
            doc = d.system(route.node)
        elif k == "processors":
            doc = d.processors(route.node)
        elif k == "processor":
            doc = d.processor(route.node, route.slot)
        else:
            doc, etag = self._metrics(route)
        return _resource(dump(doc), doc["@odata.type"], k, etag)

    def _metrics(self, route: Route, view: ControlView | None = None) -> tuple[dict, str]:
        """The metrics document and its ETag (``view``: the limit as just written, else read now)."""
        readings = self.readings()
        if route.kind == "node_metrics":
            view = view or self.limits.node_view(route.node)
            return self.docs.node_metrics(route.node, view, readings), view.etag
        gpu = self.layout.gpu(route.node, route.slot)
        view = view or self.limits.gpu_view(gpu)
        return self.docs.gpu_metrics(route.node, route.slot, gpu, view, readings), view.etag

    def _sessions(self, principal: Principal) -> dict:
        admin = "ConfigureManager" in principal.account.privileges()
        mine = [s for s in self.sessions.sessions() if admin or s.account.username == principal.account.username]
        uris = [f"{ROOT}/SessionService/Sessions/{s.id}" for s in mine]
        return self.docs.collection(f"{ROOT}/SessionService/Sessions", "SessionCollection", "Sessions", uris)

    def _session(self, route: Route, principal: Principal) -> dict | Response:
        s = self.sessions.find(route.session_id)
        admin = "ConfigureManager" in principal.account.privileges()
        if s is None or not (admin or s.account.username == principal.account.username):
            return _error(404, Message("ResourceNotFound", ("Session", route.session_id)))
        created = datetime.fromtimestamp(s.created_wall, UTC).isoformat(timespec="seconds")
        return self.docs.session(s.id, s.account.username, created)

    # ------------------------------------------------------------------ sessions
    def login(self, req: Request) -> Response:
        if not req.https and not self.allow_http_auth:
            return _error(403, Message("GeneralError", resolution=HTTPS_ONLY))
        try:
            body = parse_json_object(req.body)
        except BodyError as e:
            return _error(e.status, *e.messages)
        missing = [k for k in ("UserName", "Password") if k not in body]
        if missing:
            return _error(400, *(Message("PropertyMissing", (k,), f"#/{k}") for k in missing))
        account = self.sessions.check_password(body["UserName"], body["Password"])
        if account is None:
            uri = f"{ROOT}/SessionService/Sessions"
            return _error(401, Message("ResourceAtUriUnauthorized", (uri, "Unauthorized")))
        made = self.sessions.create(account)
        if made is None:
            return _error(503, Message("SessionLimitExceeded"))
        s, token = made
        log.info("redfish: session %s opened for %s", s.id, account.username)
        doc = self._session(Route("session", session_id=s.id), Principal(account, s))
        headers = [("X-Auth-Token", token), ("Location", doc["@odata.id"])]
        return Response(201, dump(doc), headers)

    def logout(self, route: Route, principal: Principal) -> Response:
        found = self._session(route, principal)
        if isinstance(found, Response):
            return found
        s = self.sessions.find(route.session_id)
        if s is not None and self.sessions.delete(s):
            log.info("redfish: session %s closed by %s", s.id, principal.account.username)
        return Response(204)

    # ------------------------------------------------------------------ PATCH
    def patch(self, route: Route, principal: Principal, req: Request) -> Response:
        if route.kind not in ("node_metrics", "gpu_metrics"):
            return _error(405, Message("OperationNotAllowed"))
        if "ConfigureComponents" not in principal.account.privileges():
            return _error(403, Message("InsufficientPrivilege"))
        gpu = None if route.kind == "node_metrics" else self.layout.gpu(route.node, route.slot)
        view = self.limits.node_view(route.node) if gpu is None else self.limits.gpu_view(gpu)
        try:
            change = limit_change(parse_json_object(req.body), view)
        except BodyError as e:
            return _error(e.status, *e.messages)
        try:
            self.limits.write(route.node, gpu, change.setpoint_w, change.mode, parse_if_match(req.header("if-match")))
        except EtagMismatchError:
            return _error(412, Message("PreconditionFailed"))
        self.patches += 1
        self.on_write(principal)
        doc, etag = self._metrics(route)
        if change.ignored:
            doc["@Message.ExtendedInfo"] = [m.json() for m in change.ignored]
        return _resource(dump(doc), doc["@odata.type"], route.kind, etag)


def _resource(body: bytes, odata_type: str, kind: str, etag: str | None = None) -> Response:
    headers = [("Allow", ", ".join(ALLOWED[kind])), ("Link", f"<{schema_url(odata_type)}>; rel=describedby")]
    if etag:
        headers.append(("ETag", etag))
    return Response(200, body, headers)


def _error(status: int, *messages: Message) -> Response:
    return Response(status, dump(error_body(*messages)))


__all__ = ["ALLOWED", "PUBLIC", "RedfishService", "Request", "Response", "Route"]
