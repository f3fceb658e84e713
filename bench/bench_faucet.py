"""Our controller against Faucet, in the same run, on the same bridge and hosts, with equivalent ACLs.

One netdev bridge, four hosts (our `single` layout: a1 a2 in network A, b1 b2 in network B, both
10.0.0.0/24). For each N, both controllers get an ACL of N rules on all four ports, rule i allowing
TCP to port 20000+i from 10.0.{i % 256}.0/24, plus what lets the probes through (ICMP and TCP 5201):

- ours: one security group on every port: its egress-anywhere rule, N ingress rules, ingress ICMP
  and TCP 5201. Stateful: replies of allowed connections pass by themselves;
- Faucet: one ACL in every port's `acls_in`: the N rules with the same matches, then allow ARP,
  ICMP, TCP to 5201 and TCP from 5201. Stateless: a reply passes only if a rule matches it (only
  the probe port has its mirror rule). a1 a2 are in VLAN 100, b1 b2 in VLAN 200 (the isolation ours does).

Faucet's acls_in filters what a host sends, ours (ingress rules) what a host receives; with the same
rules on every port the same host-to-host connections are allowed. For each N and each controller:

- start: process start until the flow table stops changing (1 s quiet) and ping + TCP probes pass;
  the bridge gets its controller set once the OpenFlow port listens, so OVS' reconnect back-off
  plays no part;
- TCP a1 -> a2 to the first rule's port and to a port no rule names (the stateless ACL drops the reply);
- one-rule change (ours: REST POST then DELETE; Faucet: YAML edited, SIGHUP), median of --changes
  cycles: until the rule's flow is in (or gone from) the switch (dump-flows polled), flows deleted
  and re-added by it (duration reset or vanished), pings lost (10 ms ping a1 -> a2 across it);
- kill -9 and restart: until the switch is back and its flows are stable, flows re-added, pings lost;
- TCP throughput: iperf3 a1 -> a2 through each controller's flows (snapshotted, replayed without the
  controller) and `actions=NORMAL` on the same bridge, in --runs rounds taking the three in turn.

Faucet runs from its own virtualenv (bench/.faucet-venv, made on first use: it pins its own
os-ken). Ratios are ours/faucet: below 1 ours is faster (times) or slower (throughput).

    .venv/bin/python -m bench.bench_faucet [--sizes 10 100 1000] [--runs 3] [--seconds 3] [--changes 3]
                                           [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mininet.node import Host

from bench.common import IPERF_PORT, NORMAL, print_table, snapshot_flows, throughput, write_json
from mininet_topos import ovs
from mininet_topos.control import HOST, ControllerProcess, free_port, log_tail
from mininet_topos.launcher import Running, raise_on_sigterm, random_prefix, running
from mininet_topos.reach import EchoServer, HostProcess, connect, ping, wait_until
from mininet_topos.rest import Api, register

FAUCET_VERSION = "1.10.12"
FAUCET_VENV = Path(__file__).resolve().parent / ".faucet-venv"
RULE_PORT = 20000      # rule i: TCP to RULE_PORT + i
CHANGE_PORT = 30000    # the one rule added and removed
CHANGE_PREFIX = "10.0.0.0/24"
NO_RULE_PORT = 40000   # no rule names it
VLANS = {"a": 100, "b": 200}  # Faucet's stand-in for our two networks
POLL = 0.05  # seconds between flow dumps
VOLATILE = ("cookie=", "duration=", "n_packets=", "n_bytes=", "idle_age=", "hard_age=")


@dataclass(frozen=True)
class Rule:
    """Allow TCP to `port` from `prefix` (ours: an ingress rule; Faucet: an acls_in rule)."""

    port: int
    prefix: str


def acl_rules(n: int) -> list[Rule]:
    return [Rule(RULE_PORT + i, f"10.0.{i % 256}.0/24") for i in range(n)]


# --- the flow table -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlowEntry:
    key: str       # table, priority, match (and timeouts): what identifies the flow
    actions: str
    age: float     # seconds since it was added (OVS' duration)


def dump_flows(bridge: str) -> dict[str, FlowEntry]:
    flows = {}
    for line in ovs.ofctl("dump-flows", bridge, timeout=30).splitlines():
        head, sep, actions = line.strip().partition(" actions=")
        if not sep:
            continue
        parts = head.split(", ")
        age = next(float(p[len("duration="):-1]) for p in parts if p.startswith("duration="))
        key = ", ".join(p for p in parts if not p.startswith(VOLATILE))
        flows[key] = FlowEntry(key, actions, age)
    return flows


def shape(flows: dict[str, FlowEntry]) -> frozenset[tuple[str, str]]:
    """What the table does, without counters and ages."""
    return frozenset((f.key, f.actions) for f in flows.values())


@dataclass
class Churn:
    """How a change touched the flows that were there before it."""

    added: int = 0        # flows that are new
    removed: int = 0      # flows that are gone
    reinstalled: int = 0  # flows there before and after, but deleted and re-added in between
    modified: int = 0     # same flow, other actions, not re-added (a modify keeps its age)


def churn(before: dict[str, FlowEntry], after: dict[str, FlowEntry], elapsed: float,
          vanished: set[str]) -> Churn:
    """Compare two dumps taken `elapsed` s apart; `vanished`: keys some dump in between lacked."""
    kept = before.keys() & after.keys()
    reset = {k for k in kept if after[k].age < elapsed - 0.1 or k in vanished}
    return Churn(added=len(after.keys() - before.keys()), removed=len(before.keys() - after.keys()),
                 reinstalled=len(reset),
                 modified=sum(1 for k in kept - reset if after[k].actions != before[k].actions))


class FlowWatch:
    """Polls a bridge's flows: when they last changed and which keys went missing for a while."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.flows = dump_flows(bridge)
        self.last_change = time.perf_counter()
        self.vanished: set[str] = set()
        self._seen = set(self.flows)

    def poll(self) -> dict[str, FlowEntry]:
        flows = dump_flows(self.bridge)
        if shape(flows) != shape(self.flows):
            self.last_change = time.perf_counter()
        self.vanished |= self._seen - flows.keys()
        self._seen |= flows.keys()
        self.flows = flows
        return flows

    def settle(self, quiet: float, timeout: float, ready: Callable[[], object] | None = None) -> float:
        """Poll until nothing changed for `quiet` s and `ready()` (if given) held; the last change's time."""
        deadline = time.perf_counter() + timeout
        ok = ready is None
        while True:
            self.poll()
            ok = ok or bool(ready and ready())
            if ok and time.perf_counter() - self.last_change >= quiet:
                return self.last_change
            if time.perf_counter() > deadline:
                raise TimeoutError(f"flows of {self.bridge} never settled (probe ok: {ok})")
            time.sleep(POLL)


def _tcp_socket(port: int, state: str) -> bool:
    """A socket of this namespace on local TCP `port` is in `state` ("0A" listening, "01" established), as
    /proc/net/tcp tells: reading it makes no connection to the port."""
    suffix = f":{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(f[1].endswith(suffix) and f[3] == state for f in (line.split() for line in table) if len(f) > 3)


def listening(port: int) -> bool:
    return _tcp_socket(port, "0A")


def accepted(port: int) -> bool:
    """A switch is connected to the controller listening on `port` (OVSDB's is_connected lags behind a kill)."""
    return _tcp_socket(port, "01")


# --- pings across a change ------------------------------------------------------------------------

class PingStream(HostProcess):
    """`with PingStream(a1, ip) as p:` pings every 10 ms; after the block `p.lost` counts the requests never
    answered between the first and the last reply (later ones may just have been in flight)."""

    def __init__(self, host: Host, ip: str, interval: float = 0.01) -> None:
        self.host, self.ip, self.interval = host, ip, interval
        self.seqs: set[int] = set()

    def _take(self, lines: list[str | None]) -> None:
        self.seqs |= {int(m.group(1)) for line in lines if line and (m := re.search(r"icmp_seq=(\d+)", line))}

    def __enter__(self) -> PingStream:
        self.spawn(self.host, ["ping", "-n", "-i", f"{self.interval:g}", "-W", "1", self.ip])
        deadline = time.monotonic() + 10
        while not self.seqs:
            if time.monotonic() > deadline:
                self.terminate()
                raise RuntimeError(f"ping from {self.host.name} to {self.ip} never answered")
            self._take([self.line(deadline - time.monotonic())])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # ping flushes its output on SIGINT, not on SIGTERM
        self._take(list(self.terminate()))

    @property
    def lost(self) -> int:
        return max(self.seqs) - min(self.seqs) + 1 - len(self.seqs)

    @property
    def sent(self) -> int:
        return max(self.seqs) - min(self.seqs) + 1


# --- the two controllers ----------------------------------------------------------------------------

class Contender(Protocol):
    name: str
    of_port: int

    def prepare(self, run: Running, rules: list[Rule]) -> float: ...
    def spawn(self) -> None: ...
    def kill(self) -> None: ...
    def stop(self) -> None: ...
    def change(self, add: bool) -> None: ...
    def log(self) -> str: ...


class Ours:
    """Our controller: the policy registered through REST (no switch connected), then restarted for the clock."""

    name = "ours"

    def __init__(self, state_dir: Path) -> None:
        self.process = ControllerProcess(state_dir, log_level="warning")
        self.of_port = self.process.of_port
        self.api = Api(self.process.api, timeout=120)
        self.group = ""
        self.extra_rule: str | None = None

    def prepare(self, run: Running, rules: list[Rule]) -> float:
        """Register the policy (no switch connected yet) and stop; the seconds its REST calls took."""
        self.process.start()
        try:
            started = time.perf_counter()
            group = self.api.create("security-groups", {"name": "bench"})
            self.group = group["id"]

            def ingress(**fields: Any) -> None:
                self.api.create("security-group-rules", {"security_group_id": self.group, "direction": "ingress",
                                                         **fields})
            ingress(protocol="icmp")
            ingress(protocol="tcp", port_range_min=IPERF_PORT, port_range_max=IPERF_PORT)
            for rule in rules:
                ingress(protocol="tcp", port_range_min=rule.port, port_range_max=rule.port,
                        remote_ip_prefix=rule.prefix)
            for port_id in register(self.api, run.plan).ports.values():
                self.api.patch(f"/ports/{port_id}", {"security_group_ids": [self.group]})
            return time.perf_counter() - started
        finally:
            self.process.stop()

    def spawn(self) -> None:
        self.process.start()  # returns once the REST API answers

    def kill(self) -> None:
        self.process.stop(signal.SIGKILL)

    def stop(self) -> None:
        self.process.stop()

    def change(self, add: bool) -> None:
        if add:
            self.extra_rule = self.api.create("security-group-rules", {
                "security_group_id": self.group, "direction": "ingress", "protocol": "tcp",
                "port_range_min": CHANGE_PORT, "port_range_max": CHANGE_PORT, "remote_ip_prefix": CHANGE_PREFIX})["id"]
        else:
            self.api.delete(f"/security-group-rules/{self.extra_rule}")

    def log(self) -> str:
        return log_tail(self.process.log_path)


def faucet_executable(venv: Path = FAUCET_VENV, version: str = FAUCET_VERSION) -> Path:
    """Faucet's command in its own virtualenv, created and installed from PyPI on first use (idempotent)."""
    exe = venv / "bin" / "faucet"
    if exe.exists() and list(venv.glob(f"lib/python*/site-packages/faucet-{version}.dist-info")):
        return exe
    print(f"installing faucet=={version} into {venv} (once)", flush=True)
    steps = [["python3", "-m", "venv", str(venv)]] if not (venv / "bin" / "python").exists() else []
    steps.append([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"faucet=={version}"])
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return exe


def faucet_yaml(run: Running, rules: list[Rule], appended: list[Rule] | None = None) -> str:
    """One datapath, the four ports in two VLANs, each with the ACL in acls_in.

    `appended` rules go after the probe rules, so that no existing rule changes its place (priority).
    """
    def rule(match: str) -> str:
        return f"    - rule: {{{match}, actions: {{allow: 1}}}}"
    tcp = "dl_type: 0x800, ip_proto: 6"
    lines = ["vlans:", *(f"  net-{key}: {{vid: {vid}}}" for key, vid in VLANS.items()), "acls:", "  bench:"]
    lines += [rule(f"{tcp}, tcp_dst: {r.port}, ipv4_src: {r.prefix}") for r in rules]
    lines += [rule("dl_type: 0x806"), rule("dl_type: 0x800, ip_proto: 1"),
              rule(f"{tcp}, tcp_dst: {IPERF_PORT}"), rule(f"{tcp}, tcp_src: {IPERF_PORT}")]
    lines += [rule(f"{tcp}, tcp_dst: {r.port}, ipv4_src: {r.prefix}") for r in appended or []]
    switch = run.plan.switches[0]
    lines += ["dps:", f"  {switch.name}:", f"    dp_id: 0x{switch.dpid}", "    hardware: Open vSwitch",
              "    interfaces:"]
    for vm in run.plan.vms:
        ofport = ovs.vsctl("get", "Interface", str(vm.interface), "ofport")
        lines.append(f"      {ofport}: {{name: {vm.interface}, native_vlan: net-{vm.tenant}, acls_in: [bench]}}")
    return "\n".join(lines) + "\n"


class Faucet:
    """Faucet as its users run it: a YAML file, SIGHUP to reload it."""

    name = "faucet"

    def __init__(self, state_dir: Path) -> None:
        self.exe = faucet_executable()
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.config = state_dir / "faucet.yaml"
        self.log_path = state_dir / "faucet.log"
        self.of_port = free_port()
        self.prom_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.rules: list[Rule] = []
        self.run: Running | None = None

    def prepare(self, run: Running, rules: list[Rule]) -> float:
        """Write the config; the seconds that took."""
        started = time.perf_counter()
        self.run, self.rules = run, rules
        self._write(faucet_yaml(run, rules))
        return time.perf_counter() - started

    def _write(self, text: str) -> None:
        """Replace the config in one rename, so that Faucet never reads half a file."""
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config)

    def spawn(self) -> None:
        env = {**os.environ, "PATH": f"{self.exe.parent}:{os.environ.get('PATH', '')}",  # faucet execs osken-manager
               "FAUCET_CONFIG": str(self.config), "FAUCET_LOG": str(self.log_path),
               "FAUCET_EXCEPTION_LOG": str(self.state_dir / "faucet-exception.log"),
               "FAUCET_PROMETHEUS_ADDR": HOST, "FAUCET_PROMETHEUS_PORT": str(self.prom_port)}
        with open(self.state_dir / "faucet.out", "ab") as out:
            self.proc = subprocess.Popen([str(self.exe), "--ryu-ofp-listen-host", HOST,
                                          "--ryu-ofp-tcp-listen-port", str(self.of_port)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def change(self, add: bool) -> None:
        assert self.run and self.proc
        self._write(faucet_yaml(self.run, self.rules, [Rule(CHANGE_PORT, CHANGE_PREFIX)] if add else []))
        self.proc.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return log_tail(self.log_path)


# --- the measurements -------------------------------------------------------------------------------

def median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Field by field (nested dicts too), the median of dicts of numbers that share their keys."""
    first = samples[0]
    return {k: median_of([s[k] for s in samples]) if isinstance(first[k], dict) else
            statistics.median(s[k] for s in samples) for k in first}


@dataclass
class Result:
    configure_s: float = 0.0  # ours: the REST calls that set up the policy; Faucet: writing its YAML
    start_s: float = 0.0
    flows: int = 0
    connects: dict[str, bool] = field(default_factory=dict)  # reach()
    change: dict[str, dict[str, Any]] = field(default_factory=dict)  # "add"/"delete" -> median of disruption()s
    change_samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    restart: dict[str, Any] = field(default_factory=dict)            # disruption() and reconnect_s
    pipeline: str = field(default="", repr=False)  # the flows it left, for the throughput rounds


class Bench:
    """The measurements of one controller on one bridge, a1 probing a2."""

    def __init__(self, run: Running, changes: int) -> None:
        self.run, self.changes = run, changes
        self.bridge = run.plan.bridges[0]
        self.a1, self.a2, self.ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip

    def reset_bridge(self) -> None:
        ovs.vsctl("del-controller", self.bridge)
        ovs.ofctl("del-flows", self.bridge)

    def point_at(self, contender: Contender) -> None:
        ovs.vsctl("set-controller", self.bridge, f"tcp:{HOST}:{contender.of_port}")

    def probe(self) -> bool:
        return ping(self.a1, self.ip2, timeout=0.3) and connect(self.a1, "tcp", self.ip2, IPERF_PORT, 0.5) is not None

    def measure(self, contender: Contender, rules: list[Rule]) -> Result:
        result = Result()
        result.configure_s = contender.prepare(self.run, rules)
        self.reset_bridge()
        try:
            result.start_s, result.flows = self.cold_start(contender)
            result.connects = self.reach()
            result.change_samples = {"add": [], "delete": []}
            for _ in range(self.changes):
                for what, samples in result.change_samples.items():
                    samples.append(self.one_rule_change(contender, what == "add"))
            result.change = {what: median_of(samples) for what, samples in result.change_samples.items()}
            result.restart = self.restart(contender)
            result.pipeline = snapshot_flows(self.bridge)
        except Exception:
            print(f"--- {contender.name} log tail:\n{contender.log()}", file=sys.stderr)
            raise
        finally:
            contender.stop()
            self.reset_bridge()
        return result

    def cold_start(self, contender: Contender) -> tuple[float, int]:
        """Seconds from process start until the flows stopped changing and the probes pass; flow count."""
        watch = FlowWatch(self.bridge)
        with EchoServer(self.a2, tcp=IPERF_PORT):
            started = time.perf_counter()
            contender.spawn()
            wait_until(lambda: listening(contender.of_port), 60, f"{contender.name} to listen", interval=0.01)
            self.point_at(contender)
            settled = watch.settle(quiet=1.0, timeout=180, ready=lambda: watch.flows and self.probe())
        return settled - started, len(watch.flows)

    def reach(self) -> dict[str, bool]:
        """Whether a TCP exchange a1 -> a2 gets through to the first rule's port, and to a port no rule names:
        the stateless ACL lets the first SYN through but not its reply."""
        result = {}
        for name, port in (("rule_port", RULE_PORT), ("no_rule_port", NO_RULE_PORT)):
            with EchoServer(self.a2, tcp=port):
                result[name] = connect(self.a1, "tcp", self.ip2, port, timeout=0.5) is not None
        return result

    def one_rule_change(self, contender: Contender, add: bool) -> dict[str, Any]:
        """Add (or delete) the extra rule: seconds until its flow is in (gone from) the switch, and the disruption."""
        def done(watch: FlowWatch) -> bool:
            return any(f"tp_dst={CHANGE_PORT}" in key for key in watch.flows) == add

        return self.disruption(lambda: contender.change(add), done, quiet=0.5)[1]

    def restart(self, contender: Contender) -> dict[str, Any]:
        """kill -9 and start again: seconds until the switch is back and its flows are stable, and the disruption.

        When the new process listens and when the switch reconnects are told apart: OVS retries ~1 s after
        the drop, then ~2 s and ~4 s later, so a controller that listens late waits for the next retry.
        """
        seen: dict[str, float] = {}

        def back(_watch: FlowWatch) -> bool:
            for name, check in (("listen_s", listening), ("reconnect_s", accepted)):
                if name not in seen and check(contender.of_port):
                    seen[name] = time.perf_counter()
            return "reconnect_s" in seen

        def kill_and_start() -> None:
            contender.kill()
            contender.spawn()

        started, result = self.disruption(kill_and_start, back, quiet=2.0)
        return {**result, **{name: at - started for name, at in seen.items()}}

    def disruption(self, act: Callable[[], None], done: Callable[[FlowWatch], bool],
                   quiet: float) -> tuple[float, dict[str, Any]]:
        """Run `act` with pings going a1 -> a2 every 10 ms; poll flows until `done(watch)`, then until they are
        `quiet` s unchanged. When `act` started, and: seconds until done (or the last flow change after it),
        churn, pings lost."""
        with PingStream(self.a1, self.ip2) as pings:
            watch = FlowWatch(self.bridge)
            before, t_before = watch.flows, time.perf_counter()
            time.sleep(0.2)  # a flow re-added right after the first dump must still look re-added
            started = time.perf_counter()
            act()
            while not done(watch):
                if time.perf_counter() - started > 120:
                    raise TimeoutError("the change never reached the switch")
                time.sleep(POLL / 5)
                watch.poll()
            finished = time.perf_counter()
            settled = watch.settle(quiet=quiet, timeout=60)
            after, t_after = watch.flows, time.perf_counter()
        return started, {"seconds": max(finished, settled) - started,
                         "churn": asdict(churn(before, after, t_after - t_before, watch.vanished)),
                         "pings_lost": pings.lost, "pings_sent": pings.sent}


def bench(sizes: list[int], runs: int, seconds: float, changes: int) -> dict[str, Any]:
    results: dict[str, Any] = {"faucet_version": FAUCET_VERSION, "runs": runs, "seconds": seconds,
                               "changes": changes, "sizes": {}}
    faucet_executable()
    with tempfile.TemporaryDirectory() as state, running("single", random_prefix(), (HOST, free_port()),
                                                          connect_timeout=None) as run:
        b = Bench(run, changes)
        b.reset_bridge()
        for n in sizes:
            rules = acl_rules(n)
            per_size: dict[str, Any] = {}
            pipelines = {"normal": NORMAL}
            for contender in (Ours(Path(state, f"ours-{n}")), Faucet(Path(state, f"faucet-{n}"))):
                result = b.measure(contender, rules)
                per_size[contender.name] = {k: v for k, v in asdict(result).items() if k != "pipeline"}
                pipelines[contender.name] = result.pipeline
                print(f"N={n:,} {contender.name}: start {result.start_s:.2f} s, "
                      f"rule add {result.change['add']['seconds']:.2f} s, restart {result.restart['seconds']:.2f} s",
                      flush=True)
            per_size["tcp"] = throughput(b.a1, b.a2, b.ip2, b.bridge, pipelines, seconds, runs, baseline="normal")
            b.reset_bridge()
            results["sizes"][n] = per_size
    return results


def _row(name: str, ours: float, faucet: float, count: bool = False, ratio: bool = True) -> tuple[str, str, str, str]:
    """Seconds and rates: two decimals and ours/faucet; counts: whole numbers and no ratio."""
    if count:
        return name, f"{ours:,.0f}", f"{faucet:,.0f}", ""
    return name, f"{ours:.2f}", f"{faucet:.2f}", f"{ours / faucet:.2f}" if ratio and faucet else ""


def size_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table of one N: each measurement for ours and Faucet, and ours/faucet."""
    ours, faucet = r["ours"], r["faucet"]
    rows = [_row("configure (REST calls / write YAML) (s)", ours["configure_s"], faucet["configure_s"], ratio=False),
            _row("start -> flows stable, probes pass (s)", ours["start_s"], faucet["start_s"]),
            _row("  flows in the switch", ours["flows"], faucet["flows"], count=True)]
    for key, port, what in (("rule_port", RULE_PORT, "rule 0"), ("no_rule_port", NO_RULE_PORT, "no rule")):
        ours_ok, faucet_ok = ("yes" if c["connects"][key] else "no" for c in (ours, faucet))
        rows.append((f"  TCP a1 -> a2:{port} ({what}) connects", ours_ok, faucet_ok, ""))
    for what in ("add", "delete"):
        a, b = ours["change"][what], faucet["change"][what]
        rows.append(_row(f"rule {what} -> flow {'in' if what == 'add' else 'gone from'} switch (s)",
                         a["seconds"], b["seconds"]))
        rows += [_row(f"  flows {kind}", a["churn"][kind], b["churn"][kind], count=True)
                 for kind in ("reinstalled", "added", "removed", "modified")]
        rows.append(_row("  pings lost (10 ms)", a["pings_lost"], b["pings_lost"], count=True))
    tcp = r["tcp"]
    a, b = ours["restart"], faucet["restart"]
    rows += [_row("kill -9 + restart -> flows stable (s)", a["seconds"], b["seconds"]),
             _row("  controller listening after (s)", a["listen_s"], b["listen_s"]),
             _row("  switch reconnected after (s)", a["reconnect_s"], b["reconnect_s"]),
             _row("  flows reinstalled", a["churn"]["reinstalled"], b["churn"]["reinstalled"], count=True),
             _row("  pings lost (10 ms)", a["pings_lost"], b["pings_lost"], count=True),
             _row("TCP iperf3 (Gbit/s, median)", tcp["ours"]["bps"] / 1e9, tcp["faucet"]["bps"] / 1e9),
             _row(f"  x NORMAL ({tcp['normal']['bps'] / 1e9:.2f} Gbit/s), per round", tcp["ours"]["ratio"],
                  tcp["faucet"]["ratio"])]
    return rows


def report(results: dict[str, Any]) -> None:
    for n, r in results["sizes"].items():
        print(f"\nN = {int(n):,} rules on 4 ports (ratio = ours/faucet)")
        print_table(("", "ours", "faucet", "ratio"), size_rows(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, default=3, help="iperf3 runs per pipeline (median)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per iperf3 run")
    parser.add_argument("--changes", type=int, default=3, help="rule add/delete cycles per controller (median)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    raise_on_sigterm()  # a timeout's SIGTERM still stops both controllers and deletes the bridge
    started = time.perf_counter()
    results = bench(args.sizes, args.runs, args.seconds, args.changes)
    results["wall_s"] = time.perf_counter() - started
    report(results)
    print(f"\ntook {results['wall_s']:.0f} s")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
