"""Run `sdn-controller` as a child process on free ports with its own state dir (demo and tests).

Only the child's own PID is ever signalled. It runs in its own session so that a Ctrl-C meant for
the demo does not kill it before the demo has cleaned up the switches that point at it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .rest import Api

HOST = "127.0.0.1"


class ControllerError(RuntimeError):
    pass


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def controller_command() -> list[str]:
    """The installed console script next to this Python, else the module it points at."""
    script = Path(sys.executable).parent / "sdn-controller"
    return [str(script)] if script.exists() else [sys.executable, "-m", "controller.main"]


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ControllerProcess:
    """One controller: fixed ports and DB across restarts, log appended to `log_path`."""

    def __init__(self, state_dir: Path, log_level: str = "debug", extra_args: tuple[str, ...] = ()) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.of_port = free_port()
        self.api_port = free_port()
        self.db_path = self.state_dir / "sdn.db"
        self.db_url = f"sqlite:///{self.db_path}"
        self.log_path = self.state_dir / "controller.log"
        self.log_level = log_level
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.api_port}/v1"

    @property
    def of_address(self) -> tuple[str, int]:
        return HOST, self.of_port

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        return [*controller_command(),
                "--of-listen", f"{HOST}:{self.of_port}", "--api-listen", f"{HOST}:{self.api_port}",
                "--db", self.db_url, "--log-level", self.log_level, *self.extra_args]

    def start(self, timeout: float = 30) -> None:
        """Start and return once GET /v1/health answers 200; raise with the log tail otherwise."""
        self.launch()
        self.wait_healthy(timeout)

    def launch(self) -> None:
        """Start the process and return at once, while it may still be loading."""
        if self.proc and self.proc.poll() is None:
            raise ControllerError(f"controller already running (pid {self.proc.pid})")
        env = {**os.environ, "SDN_STATE_DIR": str(self.state_dir)}
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def wait_healthy(self, timeout: float = 30) -> None:
        """Return once GET /v1/health answers 200; raise with the log tail if it exits or does not answer."""
        if self.proc is None:
            raise ControllerError("sdn-controller was not launched")
        api = Api(self.api)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControllerError(f"sdn-controller exited with {self.proc.returncode} before "
                                      f"answering /v1/health; log {self.log_path}:\n{log_tail(self.log_path)}")
            if api.healthy():
                return
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise ControllerError(f"sdn-controller did not answer {self.api}/health within {timeout:.0f} s; "
                              f"log {self.log_path}:\n{log_tail(self.log_path)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Signal our child and wait for it; SIGKILL (and raise) if it ignores `sig` for `timeout` s.

        Returns its exit code (None when it was not running).
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise ControllerError(f"sdn-controller ignored signal {sig} for {timeout} s; killed") from None
        return self.proc.returncode

    def restart(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop, then start again on the same ports with the same DB."""
        self.stop(sig)
        self.start(timeout)

    def __enter__(self) -> ControllerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
