"""What the API answers besides its resources (which are their request bodies plus read-only fields): pydantic
models, for the OpenAPI document only (the handlers build plain dicts). No field is declared required: the
document promised none before these models, and a switch not yet fully known lacks some."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


RESPONSES: tuple[type[BaseModel], ...] = (Health, Switch, Flow, Error, RouterInterface, MacBinding)
