"""What the API answers besides its resources (which are their request bodies plus read-only fields): pydantic
models, for the OpenAPI document only (the handlers build plain dicts). No field is declared required: the
document promised none before these models, and a switch not yet fully known lacks some."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from apps.explain import VERDICTS

IPV4 = {"format": "ipv4"}


class Failing(BaseModel):
    dpid: str
    reason: str
    since: str
    attempts: int
    retry_in_s: float


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: a switch keeps failing")
    switches: int
    version: str
    failing: list[Failing]
    token_required: bool = Field(description="whether every other request needs the bearer token")


class SwitchPort(BaseModel):
    name: str
    ofport: int
    mac: str
    up: bool


class SwitchLink(BaseModel):
    port: int
    peer_dpid: str
    peer_port: int


class LldpRefusal(BaseModel):
    interface: str
    reason: str
    at: str


class LldpRefused(BaseModel):
    count: int
    last: LldpRefusal | None


class Switch(BaseModel):
    dpid: str
    connected: bool
    ports: list[SwitchPort]
    links: list[SwitchLink]
    trunk_ports: list[str] | None
    lldp_refused: LldpRefused


class Flow(BaseModel):
    """A flow as read back from the switch: table, priority, match, actions, cookie, counters."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    code: int
    message: str
    details: list[dict[str, Any]]


class Error(BaseModel):
    error: ErrorBody


class RouterInterface(BaseModel):
    network_id: str
    ip_address: str = Field(json_schema_extra=IPV4)


class MacBinding(BaseModel):
    """a next hop on the external network, resolved by ARP through its uplink"""

    ip_address: str = Field(json_schema_extra=IPV4)
    mac_address: str


class TracePort(BaseModel):
    id: str
    name: str
    network_id: str


class TraceUplink(BaseModel):
    id: str
    name: str


class TraceOutput(BaseModel):
    dpid: str
    interface: str
    ofport: int
    port: TracePort | None
    uplink_of: TraceUplink | None
    packet: dict[str, Any]


class TracePacketIn(BaseModel):
    dpid: str
    packet: dict[str, Any]


class TraceSource(BaseModel):
    dpid: str
    interface: str
    ofport: int
    port: dict[str, Any] | None
    uplink_of: dict[str, Any] | None


class TraceOwner(BaseModel):
    app: str
    kind: str
    id: str | None
    name: str


class TraceStage(BaseModel):
    dpid: str
    table: str
    priority: int
    match: dict[str, Any]
    actions: list[str]
    cookie: str
    owner: TraceOwner | None


class Trace(BaseModel):
    verdict: Literal[VERDICTS] = Field(  # type: ignore[valid-type]
        description="output: some copy left by a port or uplink; controller: none did, one went to the controller (a "
        "TTL running out, a next hop to resolve, ...); drop: nothing left")
    output: list[TraceOutput] = Field(description="where copies left the fabric, each as it left")
    controller: list[TracePacketIn] = Field(description="packet-ins, with the switch that sends each")
    source: TraceSource = Field(description="where the packet entered")
    packet: dict[str, Any] = Field(description="the packet traced, defaults filled in (OpenFlow field names)")
    ct_state: str
    stages: list[TraceStage] = Field(description="every flow hit, in order, switch after switch (conntrack "
                                     "recirculations included), with the object that owns it")


RESPONSES: tuple[type[BaseModel], ...] = (Health, Switch, Flow, Error, RouterInterface, MacBinding, Trace)
