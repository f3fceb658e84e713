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
    run_in,
    send_frame,
    send_raw,
    tcp_ok,
    udp_ok,
    wait_until,
)
from mininet_topos.rest import Api, ApiError, Registration, register
from mininet_topos.topos import LAYOUTS, Layout, Plan, Tenant, VmPlan, plan

__all__ = [
    "LAYOUTS", "Api", "ApiError", "ControllerProcess", "EchoServer", "Layout", "Plan", "Registration",
    "Running", "Sniffer", "Stream", "Tenant", "VmPlan", "capture_frame", "connect", "free_port", "log_tail",
    "ping", "plan", "random_prefix", "readdress", "register", "run_in", "send_frame", "send_raw", "tcp_ok", "udp_ok",
    "wait_until",
]


def readdress(api: Api, run: Running, reg: Registration, label: str, ip: str) -> None:
    """VM `label` takes address `ip` (another tenant may use it too): in its host and in its port."""
    run.host(label).setIP(ip, run.plan.vm(label).prefixlen)
    api.patch(f"/ports/{reg.ports[label]}", {"ip_address": ip})
