"""Startup benchmark: exec -> OpenFlow port accepting, -> a switch's HELLO answered, -> GET /v1/health 200.

A restart is what makes startup time matter: OVS retries a dropped controller after ~1 s and then
~2 s later, so a controller that is not answering by then leaves its switches waiting ~3 s. Each
figure is the median over `--runs` starts of `sdn-controller` on one database (an extra first
start creates it and is not counted), next to baselines measured in the same run: the bare
interpreter (`python -c pass`) and importing os-ken's OpenFlow controller, both exec -> exit.

"HELLO answered" is the moment a client that connected and sent an OpenFlow 1.3 HELLO receives
the controller's FEATURES_REQUEST: os-ken sends it once it has read that HELLO.

    .venv/bin/python -m bench.bench_startup [--runs 9]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mininet_topos.control import HOST, controller_command, free_port

OFP_VERSION_1_3 = 4
OFPT_HELLO = 0
OFPT_FEATURES_REQUEST = 5
POLL = 0.001  # seconds between attempts; a refused connect costs microseconds
TIMEOUT = 30.0


@dataclass(frozen=True)
class Start:
    listen: float  # exec -> the OpenFlow port accepted a TCP connection
    hello: float   # exec -> FEATURES_REQUEST received in answer to our HELLO
    health: float  # exec -> GET /v1/health answered 200


def _connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection((HOST, port), timeout=TIMEOUT)
        except ConnectionRefusedError:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"nothing listened on {HOST}:{port}") from None
            time.sleep(POLL)


def _read_message(sock: socket.socket) -> tuple[int, bytes]:
    """(type, body) of the next OpenFlow message."""
    header = _read_exactly(sock, 8)
    _, msg_type, length, _ = struct.unpack("!BBHI", header)
    return msg_type, _read_exactly(sock, length - 8)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the controller closed the OpenFlow connection")
        data += chunk
    return data


def _openflow_times(port: int, exec_at: float, times: dict[str, float]) -> None:
    """Fill times['listen'] and times['hello'], as a switch that connects as early as it can sees them."""
    deadline = exec_at + TIMEOUT
    with _connect(port, deadline) as sock:
        times["listen"] = time.perf_counter() - exec_at
        sock.sendall(struct.pack("!BBHI", OFP_VERSION_1_3, OFPT_HELLO, 8, 1))
        while _read_message(sock)[0] != OFPT_FEATURES_REQUEST:
            pass
        times["hello"] = time.perf_counter() - exec_at


def _health_time(port: int, exec_at: float, times: dict[str, float]) -> None:
    deadline = exec_at + TIMEOUT
    while time.perf_counter() < deadline:
        conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/v1/health")
            if conn.getresponse().status == 200:
                times["health"] = time.perf_counter() - exec_at
                return
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            pass
        finally:
            conn.close()
        time.sleep(POLL)


def start_once(state_dir: Path) -> Start:
    """One start of `sdn-controller`, timed from just before exec; SIGTERM after, which must exit 0."""
    of_port, api_port = free_port(), free_port()
    command = [*controller_command(), "--of-listen", f"{HOST}:{of_port}", "--api-listen", f"{HOST}:{api_port}",
               "--db", f"sqlite:///{state_dir / 'sdn.db'}", "--log-level", "warning"]
    times: dict[str, float] = {}
    errors: list[BaseException] = []

    def record(measure, port: int) -> None:
        try:
            measure(port, exec_at, times)
        except Exception as exc:  # reported below with the controller's output
            errors.append(exc)

    with open(state_dir / "controller.log", "ab") as log:
        exec_at = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "SDN_STATE_DIR": str(state_dir)})
    try:
        probes = [threading.Thread(target=record, args=(_openflow_times, of_port)),
                  threading.Thread(target=record, args=(_health_time, api_port))]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    if errors or len(times) != 3 or code != 0:
        log_text = (state_dir / "controller.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"start failed (exit {code}, {errors or times}); log tail:\n{log_text}")
    return Start(**times)


def exec_to_exit(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    starts, interpreter_runs, os_ken_runs = [], [], []
    with tempfile.TemporaryDirectory(prefix="sdn-bench-startup-") as tmp:
        state_dir = Path(tmp)
        start_once(state_dir)  # creates the database and warms the page cache
        for _ in range(args.runs):  # interleaved, so that a busy moment of the machine hits all alike
            interpreter_runs.append(exec_to_exit("pass"))
            os_ken_runs.append(exec_to_exit("import os_ken.base.app_manager, os_ken.controller.controller"))
            starts.append(start_once(state_dir))
    interpreter, os_ken = statistics.median(interpreter_runs), statistics.median(os_ken_runs)
    rows = [("baseline: python -c pass (exec -> exit)", f"{interpreter:.3f} s"),
            ("baseline: python importing os-ken's controller (exec -> exit)", f"{os_ken:.3f} s")]
    for name, what in (("listen", "OpenFlow port accepting"), ("hello", "a switch's HELLO answered"),
                       ("health", "GET /v1/health 200")):
        values = [getattr(start, name) for start in starts]
        median = statistics.median(values)
        rows.append((f"exec -> {what} (median of {len(values)})",
                     f"{median:.3f} s (min {min(values):.3f}, max {max(values):.3f}; "
                     f"{median / interpreter:.1f}x python -c pass, {median / os_ken:.2f}x os-ken import)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
