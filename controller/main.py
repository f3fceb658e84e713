"""`sdn-controller`: OpenFlow listener + REST API + policy store in one process.

Startup is ordered for restarts. OVS retries a controller that went away after ~1 s, then ~2 s
later, and drops a connection whose HELLO is not answered within its back-off (at least 1 s),
doubling the back-off: a controller that is slow to answer leaves its switches waiting seconds.
So this module imports only the standard library and our config, and then:

1. the OpenFlow socket listens: from now on the kernel completes switches' TCP handshakes into
   its backlog;
2. os-ken starts on that socket and answers HELLOs; switch events that need the runtime wait in
   os-ken's queue (`SdnApp.attach`);
3. the store and the runtime load (SQLAlchemy), and the runtime is attached;
4. the REST API starts (Flask, waitress).

A taken port fails before step 2, so no switch connects to a controller that then exits; a database
that cannot be opened fails at step 3. Either is a one-line error and exit code 1.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import sys
import threading
from typing import TYPE_CHECKING, NoReturn

from controller import __version__
from controller.config import ConfigError, add_options, config_from, load_config

if TYPE_CHECKING:
    from waitress.server import BaseWSGIServer, MultiSocketServer

    from controller.config import Config, OpenFlowTls
    from controller.ofapp import SdnApp
    from controller.runtime import Runtime

LOG = logging.getLogger("sdn-controller")
BACKLOG = socket.SOMAXCONN  # every switch reconnecting at once waits here while we load


def _fail(reason: str) -> int:
    print(f"sdn-controller: {reason}", file=sys.stderr)
    return 1


def _exit(code: int) -> NoReturn:
    """End the process now: os-ken's threads cannot be joined. Switches keep their flows (fail_mode=secure)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port; IPv6 for an IPv6 address, as os-ken decides."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: the kernel's pick), for `start_openflow`."""
    sock = _bind(host, port)
    sock.listen(BACKLOG)
    return sock


def check_tls(tls: OpenFlowTls) -> None:
    """Load the certificate, key and CA as os-ken will: a mismatch is a one-line error now, not a dead
    listener thread later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    context.load_verify_locations(tls.ca)


def start_openflow(sock: socket.socket, host: str, tls: OpenFlowTls | None = None) -> SdnApp:
    """Start os-ken's OpenFlow server on `sock`, which already listens; returns our app, to `attach` to.

    With `tls`, os-ken serves TLS on that socket (its ssl port option) and requires a switch certificate
    signed by the CA; the handshake happens per connection, so a refused switch does not stop the others.

    os-ken 4.2.2 cannot be handed a socket: its server thread calls `os_ken.lib.hub.listen((host, port))`
    once and accepts on what that returns. We answer that one call with `sock` (the patch removes
    itself), so os-ken's own accept loop serves the connections already waiting in its backlog.
    """
    from os_ken.base import app_manager  # first: os_ken.controller.controller imports it circularly

    # isort: split
    import os_ken.controller.controller  # noqa: F401  (registers the ofp-* options)
    from os_ken import cfg
    from os_ken.lib import hub

    from controller import ofwire
    from controller.ofapp import SdnApp

    port = sock.getsockname()[1]
    os_ken_listen = hub.listen

    def hand_over(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        if tuple(address) != (host, port):
            return os_ken_listen(address, *args, **kwargs)
        hub.listen = os_ken_listen
        return sock

    hub.listen = hand_over
    args = ["--ofp-listen-host", host, "--ofp-tcp-listen-port", str(port)]
    if tls:
        args += ["--ofp-ssl-listen-port", str(port), "--ctl-cert", tls.cert, "--ctl-privkey", tls.key,
                 "--ca-certs", tls.ca]
    cfg.CONF(args=args, project="os_ken")
    ofwire.install_lean_flow_stats_parser()
    manager = app_manager.AppManager.get_instance()
    manager.load_apps([SdnApp.__module__])
    manager.instantiate_apps(**manager.create_contexts())
    return manager.applications[SdnApp.__name__]


def _load(config: Config, app: SdnApp) -> tuple[Runtime, BaseWSGIServer | MultiSocketServer]:
    """Steps 3 and 4: load the store and the runtime, attach it to `app`, create the REST server.

    Returns the started runtime and the server, to be run; exits with a one-line error on a failure.
    """
    import waitress

    from controller.api import create_app
    from controller.runtime import Runtime
    from controller.store import Store, StoreError

    try:
        store = Store(config.db)
    except StoreError as exc:
        _exit(_fail(str(exc)))
    runtime = Runtime(store, lldp_interval=config.lldp_interval, neighbor_refresh=config.neighbor_refresh,
                      max_flows_per_switch=config.max_flows_per_switch,
                      stats_interval=config.stats_interval)
    app.attach(runtime)
    runtime.start()
    if config.ovsdb is not None:
        from controller import ovsdb

        runtime.follow_ovsdb(ovsdb.Monitor(config.ovsdb, runtime.interfaces_claimed, attach=config.attach or (),
                                           target=ovsdb.controller_target(*config.of_listen)))
    api_host, api_port = config.api_listen
    try:
        server = waitress.create_server(create_app(store, runtime, api_token=config.api_token, version=__version__),
                                        host=api_host, port=api_port, threads=8)
    except OSError as exc:  # taken since main() checked it
        _exit(_fail(f"cannot listen for the API on {api_host}:{api_port}: {exc.strerror or exc}"))
    return runtime, server


def attach_main(argv: list[str]) -> int:
    """`sdn-controller attach BRIDGE...`: point existing bridges at the controller (its --of-listen) through its
    --ovsdb, and exit."""
    import argparse

    parser = add_options(argparse.ArgumentParser(
        prog="sdn-controller attach", description="Point Open vSwitch bridges at this controller through OVSDB: "
        "OpenFlow 1.3 only, fail_mode=secure, this controller as their only controller. Idempotent. Takes the "
        "controller's options (--of-listen, --ovsdb, --config, SDN_* variables) to know where both are."))
    parser.add_argument("bridges", nargs="+", metavar="BRIDGE")
    parser.add_argument("--datapath-type", metavar="TYPE", help="also set the bridges' datapath type (netdev, "
                        "system); default: keep each bridge's own")
    args = parser.parse_args(argv)
    try:
        config = config_from(args)
    except ConfigError as exc:
        return _fail(str(exc))
    if config.ovsdb is None:
        return _fail("attach needs --ovsdb")
    from controller import ovsdb

    target = ovsdb.controller_target(*config.of_listen)
    try:
        changed = ovsdb.attach(config.ovsdb, args.bridges, target, args.datapath_type)
    except ovsdb.OvsdbError as exc:
        return _fail(str(exc))
    for bridge in args.bridges:
        print(f"{bridge}: {'attached to' if bridge in changed else 'already on'} {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["attach"]:
        return attach_main(argv[1:])
    try:
        config = load_config(argv)
    except ConfigError as exc:
        return _fail(str(exc))
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    of_host, of_port = config.of_listen
    api_host, api_port = config.api_listen
    if config.of_tls:
        try:
            check_tls(config.of_tls)
        except (OSError, ssl.SSLError) as exc:
            return _fail(f"OpenFlow TLS: {exc}")
    try:
        of_socket = listen(of_host, of_port)
    except OSError as exc:
        return _fail(f"cannot listen for OpenFlow on {of_host}:{of_port}: {exc.strerror or exc}")
    try:
        _bind(api_host, api_port).close()  # waitress binds it later, resolving the host its own way
    except OSError as exc:
        return _fail(f"cannot listen for the API on {api_host}:{api_port}: {exc.strerror or exc}")
    # Until we serve, Ctrl-C ends the process at once, as SIGTERM does: os-ken's threads would
    # outlive a KeyboardInterrupt, and there is nothing to stop cleanly yet.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    runtime, server = _load(config, start_openflow(of_socket, of_host, config.of_tls))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before the API answers: whoever saw it up stops us cleanly
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=server.run, name="rest", daemon=True).start()
    LOG.info("sdn-controller %s: OpenFlow%s on %s:%d, API on http://%s:%d/v1", __version__,
             " over TLS" if config.of_tls else "", of_host, of_port, api_host, api_port)
    stop.wait()
    LOG.info("stopping; installed flows stay in the switches")
    runtime.stop()
    server.close()
    _exit(0)


if __name__ == "__main__":
    sys.exit(main())
