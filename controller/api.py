"""The REST API (Flask): routes declared once as data, serving both requests and the OpenAPI document.

A CRUD resource is one `Resource` line: its routes (under `/<plural, dashed>`) call the store's
`create_<x>`, `list_<xs>`, `get_<x>`, `update_<x>` and `delete_<x>`, and its schemas come from the
pydantic body the store validates with (controller/schema.py). Every mutation holds one lock across
"change the store, converge the switches", so the flows confirmed for a request are
exactly those of the state it produced.
"""

from __future__ import annotations

import hmac
import importlib.metadata
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import prometheus_client
from flask import Flask, Response, g, jsonify, request, send_from_directory
from prometheus_client.core import Metric
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException

from apps.attachments import Attachment
from apps.explain import Compiled
from apps.model import Policy, StaticRoute
from apps.routing import route_id
from controller.errors import ApiError, BudgetExceeded, ChangeRefused, NotConfirmed, error_body
from controller.responses import RESPONSES
from controller.schema import (
    Body,
    FloatingIpCreate,
    LbMemberCreate,
    LoadBalancerCreate,
    NetworkCreate,
    PortCreate,
    RouterCreate,
    RouterInterfaceCreate,
    SecurityGroupCreate,
    SecurityGroupRuleCreate,
    SecurityGroupRules,
    SwitchUpdate,
    TraceRequest,
    check_parameters,
    parse_body,
    parse_dpid,
    update_model,
)
from controller.store import Store
from controller.trace import trace

log = logging.getLogger(__name__)

PREFIX = "/v1"
UI_PATH = "/ui"  # the web view: static files of controller/ui/, which read everything through the API
# The page and its assets come from the controller only: no inline script, no other origin.
UI_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
MAX_BODY_BYTES = 1 << 20
REQUEST_ID_HEADER = "X-Request-Id"
prometheus_client.disable_created_metrics()  # no <name>_created series: every name reads as it always has


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
    def collect(self) -> Iterator[Metric]: ...
    def port_attachment(self, port_id: str) -> Attachment | None: ...
    def router_gateway(self, router_id: str) -> str | None: ...
    def compiled(self) -> Compiled: ...
    def policy(self) -> Policy: ...
    def object_stats(self, kind: str, object_id: str) -> dict[str, int]: ...
    def refresh_stats(self, timeout: float = 5.0) -> bool: ...


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
    """Where its SNAT runs, what it routed, and what each static route did."""
    routes = [{**route, "stats": runtime.object_stats(
        "router_route", route_id(router["id"], StaticRoute(route["destination"], route["nexthop"])))}
        for route in router["routes"]]
    return {"gateway_dpid": runtime.router_gateway(router["id"]), "routes": routes,
            "stats": runtime.object_stats("router", router["id"])}


def _stats_of(kind: str) -> Callable[[Runtime, dict[str, Any]], dict[str, Any]]:
    """The packets and bytes an object's flows counted (apps/counters.py)."""
    return lambda runtime, item: {"stats": runtime.object_stats(kind, item["id"])}


def _rules_stats(runtime: Runtime, group: dict[str, Any]) -> dict[str, Any]:
    return {"rules": [{**rule, "stats": runtime.object_stats("security_group_rule", rule["id"])}
                      for rule in group["rules"]]}


def _members_stats(runtime: Runtime, balancer: dict[str, Any]) -> dict[str, Any]:
    return {"members": [_member_stats(runtime, member) for member in balancer["members"]]}


def _member_stats(runtime: Runtime, member: dict[str, Any]) -> dict[str, Any]:
    return {**member, "stats": runtime.object_stats("lb_member", member["id"])}


_STATS_SCHEMA = {"type": "object", "properties": {"packets": {"type": "integer"}, "bytes": {"type": "integer"}},
                 "description": "what the switches' flows counted for it (sums that never go back while it exists); "
                 "refresh=true reads the switches first"}


CRUD = ("create", "list", "show", "update", "delete")


@dataclass(frozen=True)
class Resource:
    """A CRUD collection: URL `/<plural, dashed>`, store methods named after `singular`/`plural`."""

    singular: str
    plural: str
    body: type[Body]  # what POST accepts; PATCH takes its fields that are not frozen
    status: Callable[[Runtime, dict[str, Any]], str] = _always_active
    filters: tuple[str, ...] = ()  # query parameters of the list, passed to list_<plural>()
    actions: tuple[str, ...] = CRUD  # the subset of CRUD it serves
    # Read-only response fields: (name, a schema's name such as "X[]", or a schema itself).
    outputs: tuple[tuple[str, str | dict[str, Any]], ...] = ()
    # Response fields the runtime knows (not the store), added to every item shown.
    derived: Callable[[Runtime, dict[str, Any]], dict[str, Any]] | None = None
    stats: bool = False  # it shows counters (its own, or its rules' or members'): GETs take ?refresh=true

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
    Resource("network", "networks", NetworkCreate),
    Resource("port", "ports", PortCreate, status=_port_status, filters=("network_id",), derived=_port_attachment,
             outputs=(("binding_source", {"type": "string", "nullable": True, "enum": ["api", "ovsdb", None],
                                          "description": "api: the binding is the port's own; ovsdb: the port has "
                                          "none and is attached where a hypervisor's OVSDB says (external_ids:"
                                          "iface-id); null: unbound"}),
                      ("binding_conflict", {"type": "string", "nullable": True,
                                            "description": "interfaces claiming the port through OVSDB that were "
                                            "refused, and why"}))),
    Resource("security_group", "security_groups", SecurityGroupCreate, outputs=(("rules", "SecurityGroupRule[]"),),
             derived=_rules_stats, stats=True),
    Resource("security_group_rule", "security_group_rules", SecurityGroupRuleCreate,
             filters=("security_group_id",), actions=("create", "list", "show", "delete"),  # rules are immutable
             outputs=(("stats", _STATS_SCHEMA),), derived=_stats_of("security_group_rule"), stats=True),
    Resource("router", "routers", RouterCreate,
             outputs=(("interfaces", "RouterInterface[]"), ("mac_address", {"type": "string"}),
                      ("mac_bindings", "MacBinding[]"),
                      ("gateway_dpid", {"type": "string", "nullable": True,
                                        "description": "the switch where its SNAT runs (null: none yet)"}),
                      ("routes", {"type": "array", "items": {"type": "object", "properties": {
                          "destination": {"type": "string"}, "nexthop": {"type": "string", "format": "ipv4"},
                          "stats": _STATS_SCHEMA}}}),
                      ("stats", {**_STATS_SCHEMA, "description": "every packet it routed (to its networks, by its "
                                 "default and static routes), counted where it was routed"})),
             derived=_router_placement, stats=True),
    Resource("floating_ip", "floating_ips", FloatingIpCreate, filters=("network_id", "port_id", "load_balancer_id"),
             outputs=(("fixed_ip_address", {"type": "string", "format": "ipv4", "nullable": True}),
                      ("router_id", {"type": "string", "nullable": True}),
                      ("stats", {**_STATS_SCHEMA, "description": "what came in to it from outside and what its port "
                                 "sent out through it"})),
             derived=_stats_of("floating_ip"), stats=True),
    Resource("load_balancer", "load_balancers", LoadBalancerCreate, filters=("network_id",),
             outputs=(("members", "LbMember[]"),
                      ("mac_address", {"type": "string", "description": "the MAC the VIP answers ARP with"})),
             derived=_members_stats, stats=True),
)


_ROUTERS = next(res for res in RESOURCES if res.singular == "router")
_GROUPS = next(res for res in RESOURCES if res.singular == "security_group")


@dataclass(frozen=True)
class Route:
    """One operation under /v1; `path` uses OpenAPI `{param}` syntax, `response` "X[]" is an array of X,
    `request` the body it takes (a pydantic model, shown under its class name)."""

    method: str
    path: str
    action: str
    summary: str
    status: int = 200
    response: str | None = None
    request: type[Body] | None = None
    resource: Resource | None = None
    public: bool = False
    refresh: bool = False  # a GET of counters that takes ?refresh=true (besides those of resources with stats)

    @property
    def operation_id(self) -> str:
        return f"{self.action}_{self.resource.plural}" if self.resource else self.action


def _crud_routes(res: Resource) -> tuple[Route, ...]:
    name, item, label = res.schema_name, f"{res.path}/{{id}}", res.label
    routes = (
        Route("POST", res.path, "create", f"Create a {label}", 201, name, res.body, res),
        Route("GET", res.path, "list", f"List {label}s", 200, f"{name}[]", None, res),
        Route("GET", item, "show", f"Show a {label}", 200, name, None, res),
        Route("PATCH", item, "update", f"Update a {label}", 200, name, update_model(res.body), res),
        Route("DELETE", item, "delete", f"Delete a {label}", 204, None, None, res),
    )
    return tuple(route for route in routes if route.action in res.actions)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "health", "Liveness, connected switches, version", response="Health", public=True),
    Route("GET", "/switches", "list_switches", "Known switches", response="Switch[]"),
    Route("GET", "/switches/{dpid}", "show_switch", "One switch", response="Switch"),
    Route("PATCH", "/switches/{dpid}", "update_switch", "Pin a switch's trunk ports", response="Switch",
          request=SwitchUpdate),
    Route("GET", "/switches/{dpid}/flows", "switch_flows", "The flows installed in a switch", response="Flow[]"),
    Route("POST", "/trace", "trace", "Explain a packet: where the compiled flows send it, switch by switch, and the "
          "objects whose flows decide it", response="Trace", request=TraceRequest),
    Route("PUT", "/security-groups/{id}/rules", "replace_rules", "Replace a security group's rules in one change",
          response="SecurityGroup", request=SecurityGroupRules),
    Route("POST", "/routers/{id}/interfaces", "add_router_interface",
          "Attach a network to a router, which takes the network's gateway_ip", response="Router",
          request=RouterInterfaceCreate),
    Route("DELETE", "/routers/{id}/interfaces/{network_id}", "remove_router_interface",
          "Detach a network from a router", status=204),
    Route("POST", "/load-balancers/{id}/members", "add_lb_member", "Add a member to a load balancer", status=201,
          response="LbMember", request=LbMemberCreate),
    Route("GET", "/load-balancers/{id}/members", "list_lb_members", "A load balancer's members",
          response="LbMember[]", refresh=True),
    Route("GET", "/load-balancers/{id}/members/{member_id}", "show_lb_member", "One member of a load balancer",
          response="LbMember", refresh=True),
    Route("PATCH", "/load-balancers/{id}/members/{member_id}", "update_lb_member",
          "Change a member's weight or admin_state_up (false: DRAINING)", response="LbMember",
          request=update_model(LbMemberCreate)),
    Route("DELETE", "/load-balancers/{id}/members/{member_id}", "delete_lb_member",
          "Remove a member from a load balancer", status=204),
    *(route for res in RESOURCES for route in _crud_routes(res)),
)


def create_app(store: Store, runtime: Runtime, api_token: str | None = None, version: str = VERSION) -> Flask:
    """The WSGI application serving the API for one store and runtime."""
    app = Flask(__name__, static_folder="ui", static_url_path=UI_PATH)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    handlers = _Handlers(store, runtime, version, token_required=api_token is not None)
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    requests_total = prometheus_client.Counter("sdn_api_requests", "REST requests served, by method, route and "
                                               "status code.", ("method", "route", "code"), registry=registry)
    durations = prometheus_client.Summary("sdn_api_request_duration_seconds", "Time spent serving REST requests.",
                                          ("method",), registry=registry)
    registry.register(runtime)
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
    app.add_url_rule(UI_PATH + "/", endpoint="ui",
                     view_func=lambda: send_from_directory(app.static_folder or "", "index.html"))
    app.add_url_rule(
        "/metrics",
        endpoint="metrics",
        view_func=lambda: Response(prometheus_client.generate_latest(registry),
                                   mimetype=prometheus_client.CONTENT_TYPE_LATEST),
    )

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.before_request
    def authenticate() -> None:
        if api_token is None or _is_ui(request.path):  # the web view's files: the page asks for the token itself
            return
        if request.method in ("GET", "HEAD") and request.path == PREFIX + "/health":
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
        requests_total.labels(request.method, rule, str(response.status_code)).inc()
        durations.labels(request.method).observe(now - g.get("started", now))
        return response

    @app.after_request
    def tag(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = _request_id()
        if _is_ui(request.path):
            response.headers["Content-Security-Policy"] = UI_POLICY
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

    def __init__(self, store: Store, runtime: Runtime, version: str, token_required: bool) -> None:
        self._store = store
        self._runtime = runtime
        self._version = version
        self._token_required = token_required

    def health(self) -> Response:
        health = self._runtime.health()
        return jsonify({"status": health["status"], "switches": health["switches"], "version": self._version,
                        "failing": health["failing"], "token_required": self._token_required})

    def list_switches(self) -> Response:
        return jsonify(self._runtime.switches())

    def show_switch(self, dpid: str) -> Response:
        return jsonify(self._switch(dpid))

    def update_switch(self, dpid: str) -> Response:
        body = _json_body()
        dpid = parse_dpid(dpid)
        self._apply(lambda: self._store.update_switch(dpid, body), f"switch {dpid} was updated")
        return jsonify(self._switch(dpid))

    def trace(self) -> Response:
        values = parse_body(TraceRequest, _json_body())
        return jsonify(trace(self._runtime.policy(), self._runtime.compiled(), values))

    def replace_rules(self, id: str) -> Response:
        body = _json_body()
        group = self._apply(lambda: self._store.replace_security_group_rules(id, body),
                            f"the rules of security group {id} were replaced")
        return jsonify(self._shown(_GROUPS, group))

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
        location = f"{PREFIX}/load-balancers/{id}/members/{member['id']}"
        return jsonify(_member_stats(self._runtime, member)), 201, {"Location": location}

    def list_lb_members(self, id: str) -> Response:
        self._query(stats=True)
        return jsonify([_member_stats(self._runtime, member) for member in self._store.list_lb_members(id)])

    def show_lb_member(self, id: str, member_id: str) -> Response:
        self._query(stats=True)
        return jsonify(_member_stats(self._runtime, self._store.get_lb_member(id, member_id)))

    def update_lb_member(self, id: str, member_id: str) -> Response:
        body = _json_body()
        return jsonify(_member_stats(self._runtime, self._apply(
            lambda: self._store.update_lb_member(id, member_id, body),
            f"member {member_id} of load balancer {id} was updated")))

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
        items = getattr(self._store, f"list_{res.plural}")(**self._query(res.filters, stats=res.stats))
        return jsonify([self._shown(res, item) for item in items])

    def show(self, res: Resource, id: str) -> Response:
        self._query(stats=res.stats)
        return jsonify(self._shown(res, getattr(self._store, f"get_{res.singular}")(id)))

    def _query(self, filters: tuple[str, ...] = (), *, stats: bool) -> dict[str, str]:
        """The GET's filters; 400 naming any query parameter it does not take (a typo must not pass as no filter).
        With `stats`, ?refresh=true reads the switches' counters first (at most once a second, shared by concurrent
        calls)."""
        known = (*filters, *(("refresh",) if stats else ()))
        unknown = sorted(set(request.args) - set(known))
        if unknown:
            details = [{"field": name, "message": "unknown query parameter"} for name in unknown]
            raise ApiError(400, f"unknown query parameter {unknown[0]} (known: {', '.join(known) or 'none'})", details)
        refresh = request.args.get("refresh", "false").lower() if stats else "false"
        if refresh not in ("true", "false", "1", "0"):
            raise ApiError.invalid("refresh", "expected true or false")
        if refresh in ("true", "1"):
            self._runtime.refresh_stats()
        return {name: value for name, value in request.args.items() if name in filters}

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

        409 when a switch refused flows of the change or the change would take a switch past the flow budget
        (then nothing changed), 503 naming the switches that did not confirm it (the change is kept and retried).
        """
        try:
            return self._runtime.apply(change)
        except BudgetExceeded as exc:
            raise ApiError(
                409,
                f"nothing was changed: {exc} (--max-flows-per-switch)",
                [{"dpid": o.dpid, "flows": o.flows, "max_flows_per_switch": o.budget,
                  "reason": "over the flow budget"} for o in exc.over],
            ) from None
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


def _is_ui(path: str) -> bool:
    return path == UI_PATH or path.startswith(UI_PATH + "/")


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


# ---------------------------------------------------------------------------------------------
# OpenAPI, derived from ROUTES and the pydantic bodies.


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A body's JSON schema as pydantic makes it, in OpenAPI 3.0 terms: nested bodies inline, `nullable`."""
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    return _openapi_30(schema, schema.pop("$defs", {}))


def _openapi_30(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with its $refs to `defs` replaced by their (converted) schemas, `anyOf [X, null]` as X with
    `nullable`, and no titles (pydantic derives them from the field names)."""
    if isinstance(node, list):
        return [_openapi_30(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    options = node.get("anyOf", [])
    if len(options) == 2 and {"type": "null"} in options:
        node = {**next(option for option in options if option != {"type": "null"}), **node, "nullable": True}
        del node["anyOf"]
        if "enum" in node:  # OpenAPI 3.0: a nullable enum lists null
            node["enum"] = [*node["enum"], None]
    if "$ref" in node:
        node = {**defs[node.pop("$ref").rsplit("/", 1)[-1]], **node}
    return {key: _openapi_30(value, defs) for key, value in node.items() if key != "title"}


def _response_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A response model's schema, with no field required at any depth (see controller/responses.py)."""
    return _without_required(_body_schema(model))


def _without_required(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_required(item) for item in node]
    if isinstance(node, dict):
        return {key: _without_required(value) for key, value in node.items() if key != "required"}
    return node


def _shown_schema(model: type[BaseModel], read_only: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a GET shows of a body's object: its id, its fields, then `read_only` ones, all present."""
    shown = _body_schema(model)
    given = shown["properties"]  # a read-only field named like a given one shows it otherwise than it is given
    shown["properties"] = {"id": {"type": "string", "format": "uuid", "readOnly": True}, **given,
                           **{name: {**schema, **({} if name in given else {"readOnly": True})}
                              for name, schema in read_only.items()}}
    shown["required"] = list(shown["properties"])
    return shown


def _member_schema() -> dict[str, Any]:
    """A member as shown: its fields, and what the store adds (its balancer, status and port)."""
    return _shown_schema(LbMemberCreate, {
        "load_balancer_id": {"type": "string"},
        "status": {"type": "string", "enum": ["ONLINE", "OFFLINE", "NO_MONITOR", "DRAINING"],
                   "description": "NO_MONITOR: its balancer has no health monitor; ONLINE/OFFLINE: as the monitor "
                   "last found it (a new or re-enabled member starts ONLINE); DRAINING: admin_state_up is false"},
        "status_changed_at": {"type": "string", "format": "date-time"},
        "port_id": {"type": "string", "description": "the port whose fixed address the member is"},
        "stats": {**_STATS_SCHEMA, "description": "what clients sent it through the balancer"},
    })


def _resource_schema(res: Resource) -> dict[str, Any]:
    """<Name>: what GET returns of a resource; one also shown inside others (a group's rules) has no status there."""
    outputs = {name: schema if isinstance(schema, dict) else _ref(schema) for name, schema in res.outputs}
    shown = _shown_schema(res.body, {**outputs, "status": {"type": "string"}})
    inside = {schema.removesuffix("[]") for other in RESOURCES for _, schema in other.outputs
              if isinstance(schema, str)}
    if res.schema_name in inside:
        shown["required"].remove("status")
    return shown


def _ref(name: str) -> dict[str, Any]:
    if name.endswith("[]"):
        return {"type": "array", "items": _ref(name[:-2])}
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    if route.action == "list" and route.resource:
        parameters += [{"name": name, "in": "query", "schema": {"type": "string"}} for name in route.resource.filters]
    if route.method == "GET" and (route.refresh or route.resource is not None and route.resource.stats):
        parameters.append({"name": "refresh", "in": "query", "schema": {"type": "boolean", "default": False},
                           "description": "read the switches' counters first (at most once a second)"})
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
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": _ref(route.request.__name__)}}}
    if route.public:
        operation["security"] = []
    return operation


def openapi_document(version: str = VERSION) -> dict[str, Any]:
    """The OpenAPI 3 description of ROUTES (paths relative to the /v1 server)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    schemas = {**{model.__name__: _response_schema(model) for model in RESPONSES}, "LbMember": _member_schema(),
               **{res.schema_name: _resource_schema(res) for res in RESOURCES},
               **{route.request.__name__: _body_schema(route.request) for route in ROUTES if route.request}}
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
