"""The REST API (Flask): routes declared once as data, serving both requests and the OpenAPI document.

A CRUD resource is one `Resource` line: its routes (under `/<plural, dashed>`) call the store's
`create_<x>`, `list_<xs>`, `get_<x>`, `update_<x>` and `delete_<x>`, and its schemas come from the
store's `Field` declarations. Every mutation holds one lock across "change the store, converge the switches",
so the flows confirmed for a request are exactly those of the state it produced.
"""

from __future__ import annotations

import hmac
import importlib.metadata
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from apps.attachments import Attachment
from controller.errors import ApiError, ChangeRefused, NotConfirmed, error_body
from controller.schema import (
    FLOATING_IP_FIELDS,
    LB_MEMBER_FIELDS,
    LOAD_BALANCER_FIELDS,
    MISSING,
    NETWORK_FIELDS,
    PORT_FIELDS,
    ROUTER_FIELDS,
    ROUTER_INTERFACE_FIELDS,
    SECURITY_GROUP_FIELDS,
    SECURITY_GROUP_RULE_FIELDS,
    SECURITY_GROUP_RULES_FIELDS,
    SWITCH_FIELDS,
    Field,
    check_parameters,
    parse_dpid,
)
from controller.store import Store

log = logging.getLogger(__name__)

PREFIX = "/v1"
MAX_BODY_BYTES = 1 << 20
REQUEST_ID_HEADER = "X-Request-Id"


def _package_version() -> str:
    try:
        return importlib.metadata.version("ovs-sdn")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


VERSION = _package_version()


class Runtime(Protocol):
    """What the API needs from the controller runtime (controller/runtime.py)."""

    def apply(self, change: Callable[[], Any], timeout: float = 15.0) -> Any: ...
    def health(self) -> dict[str, Any]: ...
    def switches(self) -> list[dict[str, Any]]: ...
    def switch_flows(self, dpid: str) -> list[dict[str, Any]] | None: ...
    def port_status(self, dpid: str | None, interface: str | None) -> str: ...
    def port_attachment(self, port_id: str) -> Attachment | None: ...
    def metrics(self) -> dict[str, float]: ...
    def router_gateway(self, router_id: str) -> str | None: ...


def _always_active(_runtime: Runtime, _item: dict[str, Any]) -> str:
    return "ACTIVE"


def _port_status(runtime: Runtime, port: dict[str, Any]) -> str:
    binding = port["binding"] or {"dpid": None, "interface": None}
    return runtime.port_status(binding["dpid"], binding["interface"])


def _port_attachment(runtime: Runtime, port: dict[str, Any]) -> dict[str, Any]:
    """A port without a binding of its own shows where a hypervisor's OVSDB attached it (binding_source "ovsdb");
    any port shows the interfaces claiming it that were refused (binding_conflict)."""
    attachment = runtime.port_attachment(port["id"])
    conflict = attachment.conflict if attachment is not None else None
    if port["binding"] is not None:
        return {"binding_source": "api", "binding_conflict": conflict}
    if attachment is None or attachment.binding is None:
        return {"binding_source": None, "binding_conflict": conflict}
    dpid, interface = attachment.binding
    return {"binding": {"dpid": dpid, "interface": interface}, "binding_source": "ovsdb", "binding_conflict": conflict}


def _router_placement(runtime: Runtime, router: dict[str, Any]) -> dict[str, Any]:
    return {"gateway_dpid": runtime.router_gateway(router["id"])}


CRUD = ("create", "list", "show", "update", "delete")


@dataclass(frozen=True)
class Resource:
    """A CRUD collection: URL `/<plural, dashed>`, store methods named after `singular`/`plural`."""

    singular: str
    plural: str
    fields: tuple[Field, ...]
    status: Callable[[Runtime, dict[str, Any]], str] = _always_active
    filters: tuple[str, ...] = ()  # query parameters of the list, passed to list_<plural>()
    actions: tuple[str, ...] = CRUD  # the subset of CRUD it serves
    # Read-only response fields: (name, a schema's name such as "X[]", or a schema itself).
    outputs: tuple[tuple[str, str | dict[str, Any]], ...] = ()
    # Response fields the runtime knows (not the store), added to every item shown.
    derived: Callable[[Runtime, dict[str, Any]], dict[str, Any]] | None = None

    @property
    def schema_name(self) -> str:
        return self.singular.title().replace("_", "")

    @property
    def path(self) -> str:
        return "/" + self.plural.replace("_", "-")

    @property
    def label(self) -> str:
        return self.singular.replace("_", " ")


RESOURCES: tuple[Resource, ...] = (
    Resource("network", "networks", NETWORK_FIELDS),
    Resource("port", "ports", PORT_FIELDS, status=_port_status, filters=("network_id",), derived=_port_attachment,
             outputs=(("binding_source", {"type": "string", "nullable": True, "enum": ["api", "ovsdb", None],
                                          "description": "api: the binding is the port's own; ovsdb: the port has "
                                          "none and is attached where a hypervisor's OVSDB says (external_ids:"
                                          "iface-id); null: unbound"}),
                      ("binding_conflict", {"type": "string", "nullable": True,
                                            "description": "interfaces claiming the port through OVSDB that were "
                                            "refused, and why"}))),
    Resource("security_group", "security_groups", SECURITY_GROUP_FIELDS, outputs=(("rules", "SecurityGroupRule[]"),)),
    Resource("security_group_rule", "security_group_rules", SECURITY_GROUP_RULE_FIELDS,
             filters=("security_group_id",), actions=("create", "list", "show", "delete")),  # rules are immutable
    Resource("router", "routers", ROUTER_FIELDS,
             outputs=(("interfaces", "RouterInterface[]"), ("mac_address", {"type": "string"}),
                      ("mac_bindings", "MacBinding[]"),
                      ("gateway_dpid", {"type": "string", "nullable": True,
                                        "description": "the switch where its SNAT runs (null: none yet)"})),
             derived=_router_placement),
    Resource("floating_ip", "floating_ips", FLOATING_IP_FIELDS, filters=("network_id", "port_id"),
             outputs=(("fixed_ip_address", {"type": "string", "format": "ipv4", "nullable": True}),
                      ("router_id", {"type": "string", "nullable": True}))),
    Resource("load_balancer", "load_balancers", LOAD_BALANCER_FIELDS, filters=("network_id",),
             outputs=(("members", "LbMember[]"),
                      ("mac_address", {"type": "string", "description": "the MAC the VIP answers ARP with"}))),
)


_ROUTERS = next(res for res in RESOURCES if res.singular == "router")


@dataclass(frozen=True)
class Route:
    """One operation under /v1; `path` uses OpenAPI `{param}` syntax, `response` "X[]" is an array of X."""

    method: str
    path: str
    action: str
    summary: str
    status: int = 200
    response: str | None = None
    request: str | None = None
    resource: Resource | None = None
    public: bool = False

    @property
    def operation_id(self) -> str:
        return f"{self.action}_{self.resource.plural}" if self.resource else self.action


def _crud_routes(res: Resource) -> tuple[Route, ...]:
    name, item, label = res.schema_name, f"{res.path}/{{id}}", res.label
    routes = (
        Route("POST", res.path, "create", f"Create a {label}", 201, name, f"{name}Create", res),
        Route("GET", res.path, "list", f"List {label}s", 200, f"{name}[]", None, res),
        Route("GET", item, "show", f"Show a {label}", 200, name, None, res),
        Route("PATCH", item, "update", f"Update a {label}", 200, name, f"{name}Update", res),
        Route("DELETE", item, "delete", f"Delete a {label}", 204, None, None, res),
    )
    return tuple(route for route in routes if route.action in res.actions)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "health", "Liveness, connected switches, version", response="Health", public=True),
    Route("GET", "/switches", "list_switches", "Known switches", response="Switch[]"),
    Route("GET", "/switches/{dpid}", "show_switch", "One switch", response="Switch"),
    Route("PATCH", "/switches/{dpid}", "update_switch", "Pin a switch's trunk ports", response="Switch",
          request="SwitchUpdate"),
    Route("GET", "/switches/{dpid}/flows", "switch_flows", "The flows installed in a switch", response="Flow[]"),
    Route("PUT", "/security-groups/{id}/rules", "replace_rules", "Replace a security group's rules in one change",
          response="SecurityGroup", request="SecurityGroupRules"),
    Route("POST", "/routers/{id}/interfaces", "add_router_interface",
          "Attach a network to a router, which takes the network's gateway_ip", response="Router",
          request="RouterInterfaceCreate"),
    Route("DELETE", "/routers/{id}/interfaces/{network_id}", "remove_router_interface",
          "Detach a network from a router", status=204),
    Route("POST", "/load-balancers/{id}/members", "add_lb_member", "Add a member to a load balancer", status=201,
          response="LbMember", request="LbMemberCreate"),
    Route("GET", "/load-balancers/{id}/members", "list_lb_members", "A load balancer's members",
          response="LbMember[]"),
    Route("GET", "/load-balancers/{id}/members/{member_id}", "show_lb_member", "One member of a load balancer",
          response="LbMember"),
    Route("PATCH", "/load-balancers/{id}/members/{member_id}", "update_lb_member",
          "Change a member's weight or admin_state_up (false: DRAINING)", response="LbMember",
          request="LbMemberUpdate"),
    Route("DELETE", "/load-balancers/{id}/members/{member_id}", "delete_lb_member",
          "Remove a member from a load balancer", status=204),
    *(route for res in RESOURCES for route in _crud_routes(res)),
)


def create_app(store: Store, runtime: Runtime, api_token: str | None = None, version: str = VERSION) -> Flask:
    """The WSGI application serving the API for one store and runtime."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    handlers = _Handlers(store, runtime, version)
    metrics = _RequestMetrics()
    document = openapi_document(version)

    for route in ROUTES:
        view = getattr(handlers, route.action)
        app.add_url_rule(
            PREFIX + re.sub(r"{(\w+)}", r"<\1>", route.path),
            endpoint=route.operation_id,
            view_func=partial(view, route.resource) if route.resource else view,
            methods=[route.method],
        )
    for path in ("/openapi.json", PREFIX + "/openapi.json"):
        app.add_url_rule(path, endpoint=path, view_func=lambda: jsonify(document))
    app.add_url_rule(
        "/metrics",
        endpoint="metrics",
        view_func=lambda: Response(metrics.render(runtime.metrics()), mimetype="text/plain; version=0.0.4"),
    )

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.before_request
    def authenticate() -> None:
        if api_token is None or (request.method in ("GET", "HEAD") and request.path == PREFIX + "/health"):
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_token.encode()):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)")

    @app.before_request
    def check_text_parameters() -> None:
        check_parameters([*(request.view_args or {}).items(), *request.args.items(multi=True)])

    @app.after_request
    def count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        now = time.perf_counter()
        metrics.observe(request.method, rule, response.status_code, now - g.get("started", now))
        return response

    @app.after_request
    def tag(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = _request_id()
        return response

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> tuple[Response, int]:
        response = jsonify(exc.body())
        if exc.code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response, exc.code

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[Response, int]:
        if exc.code == 500:  # Flask's wrapper of an error raised outside any handler
            return internal_error(getattr(exc, "original_exception", None) or exc)
        # Keep werkzeug's headers (Allow on a 405), swap the HTML for the contract's JSON.
        response = exc.get_response()
        response.set_data(json.dumps(error_body(exc.code or 500, f"{exc.name}: {request.method} {request.path}")))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: BaseException) -> tuple[Response, int]:
        """Log the failure under the request's id and answer with that id alone: exception text is internal."""
        request_id = _request_id()
        log.error("request %s failed: %s %r", request_id, request.method, request.path, exc_info=exc)
        details = [{"request_id": request_id}]
        return jsonify(error_body(500, f"internal error (request id {request_id})", details)), 500

    return app


class _Handlers:
    """The view functions, bound to one store and runtime."""

    def __init__(self, store: Store, runtime: Runtime, version: str) -> None:
        self._store = store
        self._runtime = runtime
        self._version = version

    def health(self) -> Response:
        health = self._runtime.health()
        return jsonify({"status": health["status"], "switches": health["switches"], "version": self._version,
                        "failing": health["failing"]})

    def list_switches(self) -> Response:
        return jsonify(self._runtime.switches())

    def show_switch(self, dpid: str) -> Response:
        return jsonify(self._switch(dpid))

    def update_switch(self, dpid: str) -> Response:
        body = _json_body()
        dpid = parse_dpid(dpid)
        self._apply(lambda: self._store.update_switch(dpid, body), f"switch {dpid} was updated")
        return jsonify(self._switch(dpid))

    def replace_rules(self, id: str) -> Response:
        body = _json_body()
        group = self._apply(lambda: self._store.replace_security_group_rules(id, body),
                            f"the rules of security group {id} were replaced")
        return jsonify({**group, "status": "ACTIVE"})

    def add_router_interface(self, id: str) -> Response:
        body = _json_body()
        router = self._apply(lambda: self._store.add_router_interface(id, body),
                             f"an interface was added to router {id}")
        return jsonify(self._shown(_ROUTERS, router))

    def remove_router_interface(self, id: str, network_id: str) -> Response:
        self._apply(lambda: self._store.remove_router_interface(id, network_id),
                    f"the interface of router {id} on network {network_id} was removed")
        return Response(status=204)

    def add_lb_member(self, id: str) -> tuple[Response, int, dict[str, str]]:
        body = _json_body()
        member = self._apply(lambda: self._store.add_lb_member(id, body),
                             lambda member: f"member {member['id']} was added to load balancer {id}")
        return jsonify(member), 201, {"Location": f"{PREFIX}/load-balancers/{id}/members/{member['id']}"}

    def list_lb_members(self, id: str) -> Response:
        return jsonify(self._store.list_lb_members(id))

    def show_lb_member(self, id: str, member_id: str) -> Response:
        return jsonify(self._store.get_lb_member(id, member_id))

    def update_lb_member(self, id: str, member_id: str) -> Response:
        body = _json_body()
        return jsonify(self._apply(lambda: self._store.update_lb_member(id, member_id, body),
                                   f"member {member_id} of load balancer {id} was updated"))

    def delete_lb_member(self, id: str, member_id: str) -> Response:
        self._apply(lambda: self._store.delete_lb_member(id, member_id),
                    f"member {member_id} of load balancer {id} was removed")
        return Response(status=204)

    def _switch(self, dpid: str) -> dict[str, Any]:
        for switch in self._runtime.switches():
            if switch["dpid"] == dpid.lower():
                return switch
        raise ApiError.not_found("switch", dpid)

    def switch_flows(self, dpid: str) -> Response:
        flows = self._runtime.switch_flows(dpid.lower())
        if flows is None:
            raise ApiError.not_found("switch", dpid)
        return jsonify(flows)

    def create(self, res: Resource) -> tuple[Response, int, dict[str, str]]:
        body = _json_body()
        item = self._apply(lambda: getattr(self._store, f"create_{res.singular}")(body),
                           lambda item: f"{res.label} {item['id']} was created")
        return jsonify(self._shown(res, item)), 201, {"Location": f"{PREFIX}{res.path}/{item['id']}"}

    def list(self, res: Resource) -> Response:
        unknown = sorted(set(request.args) - set(res.filters))
        if unknown:
            details = [{"field": name, "message": "unknown query parameter"} for name in unknown]
            raise ApiError(400, f"unknown query parameter {unknown[0]} (known: {', '.join(res.filters)})", details)
        items = getattr(self._store, f"list_{res.plural}")(**request.args.to_dict())
        return jsonify([self._shown(res, item) for item in items])

    def show(self, res: Resource, id: str) -> Response:
        return jsonify(self._shown(res, getattr(self._store, f"get_{res.singular}")(id)))

    def update(self, res: Resource, id: str) -> Response:
        body = _json_body()
        item = self._apply(lambda: getattr(self._store, f"update_{res.singular}")(id, body),
                           f"{res.label} {id} was updated")
        return jsonify(self._shown(res, item))

    def delete(self, res: Resource, id: str) -> Response:
        self._apply(lambda: getattr(self._store, f"delete_{res.singular}")(id), f"{res.label} {id} was deleted")
        return Response(status=204)

    def _shown(self, res: Resource, item: dict[str, Any]) -> dict[str, Any]:
        shown = {**item, **(res.derived(self._runtime, item) if res.derived else {})}
        return {**shown, "status": res.status(self._runtime, shown)}

    def _apply(self, change: Callable[[], Any], what: str | Callable[[Any], str]) -> Any:
        """Make a store change through the runtime, which returns once the switches carry it.

        409 when a switch refused flows of the change (then nothing changed), 503 naming the
        switches that did not confirm it (the change is kept and retried).
        """
        try:
            return self._runtime.apply(change)
        except ChangeRefused as exc:
            raise ApiError(
                409,
                f"nothing was changed: {exc}",
                [{"dpid": r.dpid, "table": r.table, "priority": r.priority, "match": r.match, "owner": r.owner,
                  "reason": r.error} for r in exc.refused],
            ) from None
        except NotConfirmed as exc:
            done = what(exc.result) if callable(what) else what
            failed = sorted(exc.failures.items())
            raise ApiError(
                503,
                f"{done}, but flows are not confirmed on {len(failed)} switch(es): {exc}",
                [{"dpid": dpid, "reason": reason} for dpid, reason in failed],
            ) from None


def _request_id() -> str:
    """This request's id (uuid4 hex), made on first use; it ties the X-Request-Id header to the log."""
    return g.setdefault("request_id", uuid.uuid4().hex)


def _json_body() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


class _RequestMetrics:
    """Request counters and durations, rendered with the runtime's metrics in Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._seconds: dict[str, list[float]] = {}  # method -> [sum, count]

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, code)
            self._requests[key] = self._requests.get(key, 0) + 1
            total = self._seconds.setdefault(method, [0.0, 0])
            total[0] += seconds
            total[1] += 1

    def render(self, runtime_metrics: dict[str, float]) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            seconds = sorted(self._seconds.items())
        lines = [
            "# HELP sdn_api_requests_total REST requests served, by method, route and status code.",
            "# TYPE sdn_api_requests_total counter",
            *(
                f"sdn_api_requests_total{_labels(method=m, route=r, code=str(c))} {n}"
                for (m, r, c), n in requests
            ),
            "# HELP sdn_api_request_duration_seconds Time spent serving REST requests.",
            "# TYPE sdn_api_request_duration_seconds summary",
        ]
        for method, (total, n) in seconds:
            lines.append(f"sdn_api_request_duration_seconds_sum{_labels(method=method)} {total!r}")
            lines.append(f"sdn_api_request_duration_seconds_count{_labels(method=method)} {n}")
        lines.extend(f"{name} {_number(value)}" for name, value in sorted(runtime_metrics.items()))
        return "\n".join(lines) + "\n"


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")

    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


# ---------------------------------------------------------------------------------------------
# OpenAPI, derived from ROUTES and the store's field declarations.


def _object(**properties: str | dict[str, Any]) -> dict[str, Any]:
    """A compact object schema: a string value is a JSON type, a dict a full schema."""
    return {
        "type": "object",
        "properties": {k: {"type": v} if isinstance(v, str) else v for k, v in properties.items()},
    }


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


_FIXED_SCHEMAS: dict[str, dict[str, Any]] = {
    "Health": _object(
        status={"type": "string", "enum": ["ok", "degraded"], "description": "degraded: a switch keeps failing"},
        switches="integer",
        version="string",
        failing=_array(_object(dpid="string", reason="string", since="string", attempts="integer",
                               retry_in_s="number")),
    ),
    "Switch": _object(
        dpid="string",
        connected="boolean",
        ports=_array(_object(name="string", ofport="integer", mac="string", up="boolean")),
        links=_array(_object(port="integer", peer_dpid="string", peer_port="integer")),
        trunk_ports={"type": "array", "items": {"type": "string"}, "nullable": True},
        lldp_refused=_object(count="integer", last={**_object(interface="string", reason="string", at="string"),
                                                     "nullable": True}),
    ),
    "Flow": {
        "type": "object",
        "description": "A flow as read back from the switch: table, priority, match, actions, cookie, counters.",
    },
    "Error": _object(
        error=_object(code="integer", message="string", details=_array({"type": "object"}))
    ),
    "RouterInterface": _object(network_id="string", ip_address={"type": "string", "format": "ipv4"}),
    "MacBinding": {**_object(ip_address={"type": "string", "format": "ipv4"}, mac_address="string"),
                   "description": "a next hop on the external network, resolved by ARP through its uplink"},
}


def _member_schema() -> dict[str, Any]:
    """A member as shown: its fields, and what the store adds (its id, balancer, status and port)."""
    shown = _fields_schema(LB_MEMBER_FIELDS, LB_MEMBER_FIELDS)
    read_only = {
        "id": {"type": "string", "format": "uuid"},
        "load_balancer_id": {"type": "string"},
        "status": {"type": "string", "enum": ["ONLINE", "OFFLINE", "NO_MONITOR", "DRAINING"],
                   "description": "NO_MONITOR: its balancer has no health monitor; ONLINE/OFFLINE: as the monitor "
                   "last found it (a new or re-enabled member starts ONLINE); DRAINING: admin_state_up is false"},
        "status_changed_at": {"type": "string", "format": "date-time"},
        "port_id": {"type": "string", "description": "the port whose fixed address the member is"},
    }
    shown["properties"] = {"id": read_only.pop("id") | {"readOnly": True}, **shown["properties"],
                           **{name: {**schema, "readOnly": True} for name, schema in read_only.items()}}
    shown["required"] = list(shown["properties"])
    return shown


def _field_schema(spec: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": spec.type, "description": spec.description, **spec.schema}
    if spec.nullable:
        schema["nullable"] = True
    if spec.default is not MISSING:
        schema["default"] = spec.default
    if spec.fields:  # an object's fields, or those of each object of an array
        nested = _fields_schema(spec.fields, [f for f in spec.fields if f.required])
        schema.update({"items": nested} if spec.type == "array" else nested)
    return schema


def _fields_schema(fields: tuple[Field, ...], required: tuple[Field, ...] | list[Field]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {spec.name: _field_schema(spec) for spec in fields},
        "additionalProperties": False,
    }
    names = [spec.name for spec in required]
    if names:
        schema["required"] = names
    return schema


def _resource_schemas(res: Resource) -> dict[str, dict[str, Any]]:
    """<Name> (what GET returns), <Name>Create and <Name>Update (what POST and PATCH accept, if served)."""
    shown = _fields_schema(res.fields, res.fields)
    given = {spec.name for spec in res.fields}  # an output named like a field shows it otherwise than it is given
    shown["properties"] = {
        "id": {"type": "string", "format": "uuid", "readOnly": True},
        **shown["properties"],
        **{name: {**(schema if isinstance(schema, dict) else _ref(schema)), **({} if name in given else
                                                                                {"readOnly": True})}
           for name, schema in res.outputs},
        "status": {"type": "string", "readOnly": True},
    }
    shown["required"] = list(shown["properties"])
    schemas = {
        res.schema_name: shown,
        f"{res.schema_name}Create": _fields_schema(res.fields, [spec for spec in res.fields if spec.required]),
    }
    if "update" in res.actions:
        schemas[f"{res.schema_name}Update"] = _fields_schema(tuple(spec for spec in res.fields if spec.mutable), [])
    return schemas


def _ref(name: str) -> dict[str, Any]:
    if name.endswith("[]"):
        return _array(_ref(name[:-2]))
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    if route.action == "list" and route.resource:
        parameters += [{"name": name, "in": "query", "schema": {"type": "string"}} for name in route.resource.filters]
    success: dict[str, Any] = {"description": "OK" if route.response else "No content"}
    if route.response:
        success["content"] = {"application/json": {"schema": _ref(route.response)}}
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "responses": {str(route.status): success, "default": {"$ref": "#/components/responses/Error"}},
    }
    if parameters:
        operation["parameters"] = parameters
    if route.request:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(route.request)}}}
    if route.public:
        operation["security"] = []
    return operation


def openapi_document(version: str = VERSION) -> dict[str, Any]:
    """The OpenAPI 3 description of ROUTES (paths relative to the /v1 server)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    schemas = {**_FIXED_SCHEMAS, "SwitchUpdate": _fields_schema(SWITCH_FIELDS, []),
               "SecurityGroupRules": _fields_schema(SECURITY_GROUP_RULES_FIELDS, SECURITY_GROUP_RULES_FIELDS),
               "RouterInterfaceCreate": _fields_schema(ROUTER_INTERFACE_FIELDS, ROUTER_INTERFACE_FIELDS),
               "LbMember": _member_schema(),
               "LbMemberCreate": _fields_schema(LB_MEMBER_FIELDS, [spec for spec in LB_MEMBER_FIELDS if spec.required]),
               "LbMemberUpdate": _fields_schema(tuple(spec for spec in LB_MEMBER_FIELDS if spec.mutable), [])}
    for res in RESOURCES:
        schemas.update(_resource_schemas(res))
    return {
        "openapi": "3.0.3",
        "info": {"title": "ovs-sdn controller API", "version": version},
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "400, 401, 404, 409, 422 or 503: the error and the offending fields; "
                    "500: only the request id, under which the controller logged what failed",
                    "headers": {REQUEST_ID_HEADER: {"description": "This request's id (on every response)",
                                                    "schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
