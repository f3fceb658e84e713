"""Startup: the controller listens and answers HELLOs before its store has loaded, and a switch that
connects in that window is served on that very connection once the runtime is ready. A taken port
is still a one-line error that leaves the running controller and its switch alone.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from helpers import ControllerProcess, ping, register, wait_until

from mininet_topos import ovs


def openflow_peers(port: int) -> set[str]:
    """The switch-side addresses of the TCP connections to 127.0.0.1:port (accepted or in the backlog)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[2] for line in out.splitlines() if line.strip()}


@contextmanager
def locked(db_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on an SQLite database: the controller cannot load its store meanwhile.

    The store uses a write-ahead log, where readers pass a mere EXCLUSIVE transaction; in EXCLUSIVE
    locking mode they do not. Its SQLite driver waits up to 5 s for the lock before giving up.
    """
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        connection.close()  # rolls back: the lock is released


def known_switches(db_path: Path) -> set[str]:
    with closing(sqlite3.connect(db_path)) as connection:
        return {dpid for (dpid,) in connection.execute("SELECT dpid FROM switches")}


def hello_exchanged_since(offset: int, bridge: str, port: int) -> bool:
    """OVS logged, after byte `offset` of its log, that `bridge` connected to 127.0.0.1:port.

    OVS calls a controller connection connected once both HELLOs were exchanged (its OVSDB status lags
    by up to 5 s; its log does not).
    """
    with ovs.VSWITCHD_LOG.open("rb") as log:
        log.seek(offset)
        return f"|rconn|INFO|{bridge}<->tcp:127.0.0.1:{port}: connected\n".encode() in log.read()


def test_a_switch_that_connects_while_the_store_loads_is_served_on_that_connection(controller, api, net_factory):
    run = net_factory("single")
    bridge, dpid = run.plan.bridges[0], run.plan.switches[0].dpid
    wait_until(lambda: dpid in known_switches(controller.db_path), 15, "the switch to be stored")
    controller.stop()  # OVS retries after ~1 s: we listen long before
    with locked(controller.db_path):
        offset = ovs.VSWITCHD_LOG.stat().st_size
        controller.launch()
        # The store waits for the lock (up to 5 s), so the runtime does not exist yet: os-ken answers alone.
        wait_until(lambda: hello_exchanged_since(offset, bridge, controller.of_port), 4,
                   "the switch to connect and exchange HELLOs while the store is locked")
        early = openflow_peers(controller.of_port)
        assert len(early) == 1 and not api.healthy()
    controller.wait_healthy()
    wait_until(lambda: [s["connected"] for s in api.get("/switches")] == [True], 15, "the runtime to serve the switch")
    assert openflow_peers(controller.of_port) == early  # never dropped and reconnected
    register(api, run.plan)
    assert wait_until(lambda: ping(run.host("a1"), run.plan.vm("a2").ip), 15, "a1 -> a2 through new flows")


@pytest.mark.parametrize("taken", ["of_port", "api_port"])
def test_a_second_controller_on_a_taken_port_fails_in_one_line(controller, api, net_factory, tmp_path, taken):
    run = net_factory("single")
    second = ControllerProcess(tmp_path / "second")
    setattr(second, taken, getattr(controller, taken))
    result = subprocess.run(second.command(), capture_output=True, text=True, timeout=30)
    what = "OpenFlow" if taken == "of_port" else "the API"
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"sdn-controller: cannot listen for {what} on 127.0.0.1:"
                                          f"{getattr(controller, taken)}: Address already in use"]
    assert ovs.controller_connected(run.plan.bridges[0]) and api.healthy()
