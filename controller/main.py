"""`sdn-controller`: OpenFlow listener + REST API + policy store in one process."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading

import waitress

from controller import __version__, ofwire
from controller.api import create_app
from controller.config import ConfigError, load_config
from controller.runtime import Runtime
from controller.store import Store, StoreError

LOG = logging.getLogger("sdn-controller")


def _fail(reason: str) -> int:
    print(f"sdn-controller: {reason}", file=sys.stderr)
    return 1


def _check_listen(host: str, port: int) -> None:
    """Fail early with a clear reason: os-ken binds in a thread and would only log the error."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _start_openflow(host: str, port: int, runtime: Runtime) -> None:
    from os_ken.base import app_manager  # first: os_ken.controller.controller imports it circularly

    # isort: split
    import os_ken.controller.controller  # noqa: F401  (registers the ofp-* options)
    from os_ken import cfg

    cfg.CONF(args=["--ofp-listen-host", host, "--ofp-tcp-listen-port", str(port)], project="os_ken")
    ofwire.install_lean_flow_stats_parser()
    manager = app_manager.AppManager.get_instance()
    manager.load_apps(["controller.ofapp"])
    manager.instantiate_apps(runtime=runtime, **manager.create_contexts())


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ConfigError as exc:
        return _fail(str(exc))
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        store = Store(config.db)
    except StoreError as exc:
        return _fail(str(exc))
    of_host, of_port = config.of_listen
    api_host, api_port = config.api_listen
    runtime = Runtime(store, lldp_interval=config.lldp_interval)
    try:
        _check_listen(of_host, of_port)
    except OSError as exc:
        return _fail(f"cannot listen for OpenFlow on {of_host}:{of_port}: {exc.strerror or exc}")
    try:
        server = waitress.create_server(create_app(store, runtime, api_token=config.api_token, version=__version__),
                                        host=api_host, port=api_port, threads=8)
    except OSError as exc:
        return _fail(f"cannot listen for the API on {api_host}:{api_port}: {exc.strerror or exc}")
    _start_openflow(of_host, of_port, runtime)
    runtime.start()
    threading.Thread(target=server.run, name="rest", daemon=True).start()
    LOG.info("sdn-controller %s: OpenFlow on %s:%d, API on http://%s:%d/v1", __version__,
             of_host, of_port, api_host, api_port)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    LOG.info("stopping; installed flows stay in the switches")
    runtime.stop()
    server.close()
    logging.shutdown()
    os._exit(0)  # os-ken's threads cannot be joined; the switches keep their flows (fail_mode=secure)


if __name__ == "__main__":
    sys.exit(main())
