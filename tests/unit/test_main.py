"""sdn-controller's startup: it listens for OpenFlow before importing anything heavy, hands that socket to
os-ken, and still fails with one line on a taken port or a database it cannot open.

Each case runs in a fresh interpreter: this one has long imported Flask, SQLAlchemy and os-ken.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["flask", "os_ken", "sqlalchemy", "waitress", "werkzeug"]
UNUSABLE_DB = "sqlite:////dev/null/sdn.db"  # its directory cannot be created


def python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter from the repository root; a hang fails the test (TimeoutExpired)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def controller(*args: str) -> subprocess.CompletedProcess[str]:
    return python(f"import sys; from controller.main import main; sys.exit(main({list(args)!r}))")


def test_importing_main_imports_nothing_heavy() -> None:
    result = python(f"import json, sys, controller.main; "
                    f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_openflow_listens_before_anything_heavy_is_imported_and_a_bad_database_exits_cleanly() -> None:
    """The database is opened after os-ken started (its threads cannot be joined): the process must still end."""
    result = python(f"""
import json, socket, sys
from controller.main import main
listen = socket.socket.listen
def record(sock, *args):
    print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))), flush=True)
    return listen(sock, *args)
socket.socket.listen = record
sys.exit(main(['--of-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--db', {UNUSABLE_DB!r},
               '--log-level', 'warning']))
""")
    assert result.returncode == 1
    assert json.loads(result.stdout.splitlines()[0]) == []  # at the OpenFlow listen, the first one
    [line] = result.stderr.splitlines()
    assert line.startswith(f"sdn-controller: cannot open database {UNUSABLE_DB}: ")


@pytest.mark.parametrize("taken, what", [("--of-listen", "OpenFlow"), ("--api-listen", "the API")])
def test_a_taken_port_is_a_one_line_error(taken: str, what: str) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        args = {"--of-listen": "127.0.0.1:0", "--api-listen": "127.0.0.1:0", taken: f"127.0.0.1:{port}"}
        result = controller(*(item for pair in args.items() for item in pair), "--db", UNUSABLE_DB)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"sdn-controller: cannot listen for {what} on 127.0.0.1:{port}: "
                                          "Address already in use"]


def test_os_ken_serves_a_switch_that_connected_before_it_started() -> None:
    """The connection waited in the kernel's backlog of our socket; os-ken accepts it and answers its HELLO."""
    result = python("""
import os, socket, struct
from controller.main import listen, start_openflow
sock = listen('127.0.0.1', 0)
switch = socket.create_connection(sock.getsockname(), timeout=30)
switch.sendall(struct.pack('!BBHI', 4, 0, 8, 1))  # OpenFlow 1.3 HELLO
start_openflow(sock, '127.0.0.1')
types = []
while 5 not in types:  # FEATURES_REQUEST: os-ken read our HELLO
    version, kind, length, xid = struct.unpack('!BBHI', switch.recv(8, socket.MSG_WAITALL))
    switch.recv(length - 8, socket.MSG_WAITALL) if length > 8 else b''
    types.append(kind)
from os_ken.lib import hub
print(types, hub.listen.__module__, flush=True)
os._exit(0)  # os-ken's threads cannot be joined
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[0,", "5]", "os_ken.lib.hub"]  # HELLO, FEATURES_REQUEST; patch removed


def test_a_tls_key_that_does_not_match_its_certificate_is_a_one_line_error(tmp_path: Path) -> None:
    """Checked before listening: os-ken would load it in its server thread, which dies without a word."""
    for name in ("a", "b"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-days",
                        "1", "-keyout", tmp_path / f"{name}.key", "-out", tmp_path / f"{name}.pem"],
                       check=True, capture_output=True, timeout=60)
    result = controller("--of-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--db", UNUSABLE_DB,
                        "--of-tls-cert", str(tmp_path / "a.pem"), "--of-tls-key", str(tmp_path / "b.key"),
                        "--of-tls-ca", str(tmp_path / "b.pem"))
    assert result.returncode == 1
    assert result.stderr.startswith("sdn-controller: OpenFlow TLS: ") and result.stderr.count("\n") == 1, result.stderr
