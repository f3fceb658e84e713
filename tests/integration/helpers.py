"""What integration tests import: condition waits, reachability checks and the REST client.

They live in `mininet_topos` because the demo uses the same code; this module is the tests' single
import point.
"""

from mininet_topos.control import ControllerProcess, free_port, log_tail
from mininet_topos.launcher import Running, random_prefix
from mininet_topos.reach import (
    EchoServer,
    Sniffer,
    Stream,
    capture_frame,
    connect,
    ping,
    ping_output,
    run_in,
    seen_from,
    send_frame,
    send_raw,
    tcp_ok,
    udp_ok,
    wait_until,
)
from mininet_topos.rest import (
    Api,
    ApiError,
    Registration,
    add_router_interface,
    attach_floating_ip,
    create_floating_ip,
    create_router,
    register,
    remove_router_interface,
    router_gateway_ip,
    set_external_gateway,
)
from mininet_topos.topos import LAYOUTS, Layout, Plan, Tenant, VmPlan, plan

__all__ = [
    "LAYOUTS", "Api", "ApiError", "ControllerProcess", "EchoServer", "Layout", "Plan", "Registration",
    "Running", "Sniffer", "Stream", "Tenant", "VmPlan", "add_router_interface", "attach_floating_ip",
    "capture_frame", "connect", "create_floating_ip", "create_router", "free_port", "log_tail",
    "ping", "ping_output", "plan", "random_prefix", "readdress", "register", "remove_router_interface",
    "router_gateway_ip", "run_in", "seen_from", "send_frame", "send_raw", "set_external_gateway", "tcp_ok", "udp_ok",
    "wait_until",
]


def readdress(api: Api, run: Running, reg: Registration, label: str, ip: str) -> None:
    """VM `label` takes address `ip` (another tenant may use it too): in its host and in its port."""
    run.host(label).setIP(ip, run.plan.vm(label).prefixlen)
    api.patch(f"/ports/{reg.ports[label]}", {"ip_address": ip})
