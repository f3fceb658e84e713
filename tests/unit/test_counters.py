"""Counters per object, read from in-memory switches that count what the test says their flows matched: sums per
rule that never go back when flows are replaced, shared flows of allow-everything rules, the on-demand refresh and its
bound, and what /metrics and the objects' GET show."""

from __future__ import annotations

import threading

from apps.counters import counted_flows
from apps.flows import APP_CODES, cookie
from apps.pipeline import table_id
from controller.api import create_app
from controller.counters import ObjectCounters, Schedule
from controller.ofwire import FlowCounter
from controller.runtime import Runtime
from controller.store import Store
from tests.unit.api_helpers import metric
from tests.unit.test_runtime import S1, connect, make_runtime, network, switch

RULE = "security_group_rule"


def web(runtime: Runtime) -> tuple[str, dict, dict]:
    """Two ports on s1 in a group `web` whose ingress rules allow TCP 80 and UDP 53: (group id, tcp rule, udp rule)."""
    store = runtime.store
    group = runtime.apply(lambda: store.create_security_group({"name": "web"}))["id"]
    tcp, udp = (runtime.apply(lambda proto=proto, port=port: store.create_security_group_rule(
        {"security_group_id": group, "direction": "ingress", "protocol": proto, "port_range_min": port}))
        for proto, port in (("tcp", 80), ("udp", 53)))
    net = network(runtime)
    for n in (1, 2):
        runtime.apply(lambda n=n: store.create_port({
            "network_id": net, "mac_address": f"fa:16:3e:00:00:{n:02x}", "ip_address": f"10.0.0.{10 + n}",
            "binding": {"dpid": S1, "interface": f"s1-eth{n}"}, "security_group_ids": [group]}))
    return group, tcp, udp


def test_a_rules_counter_sums_its_flows_and_never_goes_back(store: Store) -> None:
    runtime = make_runtime(store)
    s1 = switch(S1)
    connect(runtime, s1)
    _, tcp, udp = web(runtime)
    assert s1.count(cookie("security_groups", tcp["id"]), 10, 1000) == 1  # its conj_id flow
    runtime._read_counters()
    assert runtime.object_stats(RULE, tcp["id"]) == {"packets": 10, "bytes": 1000}
    assert runtime.object_stats(RULE, udp["id"]) == {"packets": 0, "bytes": 0}
    # The flow is replaced (its counters start again from zero) and counts 3 more: the sum grows by 3.
    s1.counts.clear()
    s1.count(cookie("security_groups", tcp["id"]), 3, 300)
    runtime._read_counters()
    assert runtime.object_stats(RULE, tcp["id"]) == {"packets": 13, "bytes": 1300}
    s1.count(cookie("security_groups", tcp["id"]), 2, 200)
    runtime._read_counters()
    assert metric(runtime, "sdn_object_packets_total", kind=RULE, id=tcp["id"]) == 15
    assert metric(runtime, "sdn_object_bytes_total", kind=RULE, id=tcp["id"]) == 1500
    assert metric(runtime, "sdn_object_packets_total", kind=RULE, id=udp["id"]) == 0
    assert metric(runtime, "sdn_counter_reads_total") == 3
    # The rule goes: so do its flows and its sums.
    runtime.apply(lambda: store.delete_security_group_rule(tcp["id"]))
    runtime._read_counters()
    assert (RULE, tcp["id"]) not in runtime.counters.sums()
    assert runtime.object_stats(RULE, udp["id"]) == {"packets": 0, "bytes": 0}


def test_rules_that_allow_everything_share_their_profiles_flow_in_its_direction(store: Store) -> None:
    runtime = make_runtime(store)
    s1 = switch(S1)
    connect(runtime, s1)
    group, _, _ = web(runtime)
    (egress,) = [r for r in store.get_security_group(group)["rules"] if r["direction"] == "egress"]
    (profile,) = {port.profile for port in store.snapshot().ports}
    shared = cookie("security_groups", f"profile/{profile}")
    assert s1.count(shared, 4, 400, table_id("egress_ct")) == 1
    runtime._read_counters()
    assert runtime.object_stats(RULE, egress["id"]) == {"packets": 4, "bytes": 400}
    # Another group of the ports allowing all egress too: both rules count what the shared flow counts from then on.
    other = runtime.apply(lambda: store.create_security_group({"name": "other"}))
    for port in store.list_ports():
        runtime.apply(lambda port=port: store.update_port(port["id"], {"security_group_ids": [group, other["id"]]}))
    (profile,) = {port.profile for port in store.snapshot().ports}
    s1.count(cookie("security_groups", f"profile/{profile}"), 5, 500, table_id("egress_ct"))
    s1.count(cookie("security_groups", f"profile/{profile}"), 7, 700, table_id("ingress_ct"))  # no such rule
    runtime._read_counters()
    assert runtime.object_stats(RULE, egress["id"]) == {"packets": 9, "bytes": 900}
    assert runtime.object_stats(RULE, other["rules"][0]["id"]) == {"packets": 5, "bytes": 500}


def test_only_the_counting_apps_flows_are_asked_for_and_a_refresh_is_bounded(store: Store) -> None:
    runtime = make_runtime(store, stats_interval=3600.0)
    s1 = switch(S1)
    connect(runtime, s1)
    _, tcp, _ = web(runtime)
    runtime.start()
    try:
        s1.count(cookie("security_groups", tcp["id"]), 6, 600)
        before = s1.stats_requests
        assert runtime.refresh_stats(timeout=10)
        assert s1.stats_requests - before == 3  # one per counting app: security groups, routing, load balancing
        assert runtime.object_stats(RULE, tcp["id"]) == {"packets": 6, "bytes": 600}
        # Eight callers at once within the second after a reading: served from it, the switch is not asked again.
        callers = [threading.Thread(target=runtime.refresh_stats) for _ in range(8)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(10)
        assert s1.stats_requests - before == 3
    finally:
        runtime.stop()


def test_get_shows_stats_and_refreshes_on_request_and_metrics_label_them(store: Store) -> None:
    runtime = make_runtime(store, stats_interval=3600.0)
    s1 = switch(S1)
    connect(runtime, s1)
    group, tcp, udp = web(runtime)
    client = create_app(store, runtime).test_client()
    runtime.start()
    try:
        s1.count(cookie("security_groups", tcp["id"]), 2, 128)
        assert client.get(f"/v1/security-group-rules/{tcp['id']}").json["stats"] == {"packets": 0, "bytes": 0}
        shown = client.get(f"/v1/security-group-rules/{tcp['id']}?refresh=true").json
        assert shown["stats"] == {"packets": 2, "bytes": 128}
        rules = {r["id"]: r["stats"] for r in client.get(f"/v1/security-groups/{group}").json["rules"]}
        assert rules[tcp["id"]] == {"packets": 2, "bytes": 128} and rules[udp["id"]] == {"packets": 0, "bytes": 0}
        listed = client.get(f"/v1/security-group-rules?security_group_id={group}&refresh=1").json
        assert {r["id"]: r["stats"]["packets"] for r in listed}[tcp["id"]] == 2
        bad = client.get(f"/v1/security-group-rules/{tcp['id']}?refresh=maybe")
        assert bad.status_code == 400 and bad.json["error"]["details"][0]["field"] == "refresh"
        text = client.get("/metrics").get_data(as_text=True)
        assert f'sdn_object_packets_total{{id="{tcp["id"]}",kind="security_group_rule"}} 2.0' in text
        assert f'sdn_object_bytes_total{{id="{udp["id"]}",kind="security_group_rule"}} 0.0' in text
        assert "# TYPE sdn_object_packets_total counter" in text
        assert "\nsdn_switches_connected 1.0\n" in text and "sdn_converge_passes " in text
    finally:
        runtime.stop()


def test_every_counted_object_has_cookies_of_its_own(store: Store) -> None:
    """No two objects' counting flows share a cookie (but allow-everything rules of one profile), and the flows a
    profile shares are told apart by table."""
    runtime = make_runtime(store)
    _, tcp, udp = web(runtime)
    counted = counted_flows(store.snapshot())
    owners = [owners for owners in counted.values()]
    assert ((RULE, tcp["id"]),) in owners and ((RULE, udp["id"]),) in owners
    assert len({cookie_ for cookie_, _ in counted}) == len(counted) - 1  # the profile's, in two tables
    assert all(c >> 56 in {APP_CODES[app] for app in ("security_groups", "routing", "load_balancing")}
               for c, _ in counted)


def test_sums_add_what_each_flow_grew_by_and_all_of_a_new_or_replaced_one() -> None:
    counters = ObjectCounters()
    counted = {(7, None): (("router", "r"),), (8, None): (("router_route", "r/x/y"), ("router", "r"))}

    def reading(cookie_: int, packets: int, age: int, match: bytes = b"m") -> FlowCounter:
        return FlowCounter(40, 100, match, cookie_, packets, packets * 100, age)

    counters.update(S1, [reading(7, 5, 10), reading(8, 1, 10, b"n"), reading(9, 50, 1, b"o")], counted)
    assert counters.sums() == {("router", "r"): (6, 600), ("router_route", "r/x/y"): (1, 100)}
    counters.update(S1, [reading(7, 6, 11), reading(8, 3, 1, b"n")], counted)  # 8 was re-added (younger): all of 3
    assert counters.sums() == {("router", "r"): (10, 1000), ("router_route", "r/x/y"): (4, 400)}
    counters.update(S1, [reading(8, 4, 2, b"n")], counted)  # 7 went: what it counted stays
    assert counters.get("router", "r") == (11, 1100)
    counters.keep({(7, None): (("router", "r"),), (5, None): (("floating_ip", "f"),)})
    assert counters.sums() == {("router", "r"): (11, 1100), ("floating_ip", "f"): (0, 0)}


def test_a_schedule_reads_at_most_once_a_min_age_when_asked() -> None:
    schedule = Schedule(interval=3600.0, min_age=60.0)
    readings = []

    def reader() -> None:
        while schedule.wait():
            readings.append(1)
            schedule.ended()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert schedule.fresh(10) and len(readings) == 1
    assert schedule.fresh(10) and len(readings) == 1  # within min_age: the last one serves
    schedule.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_a_refresh_asked_during_a_reading_waits_for_the_next() -> None:
    """The reading under way may have read a switch before the call: the caller gets the one after it."""
    schedule = Schedule(interval=3600.0, min_age=0.0)
    reading, release, readings = threading.Event(), threading.Event(), []

    def reader() -> None:
        while schedule.wait():
            reading.set()
            release.wait(10)
            readings.append(1)
            schedule.ended()

    threading.Thread(target=reader, daemon=True).start()
    first = threading.Thread(target=schedule.fresh, args=(10,))
    first.start()
    assert reading.wait(10)  # the first reading is under way, held
    answered = []
    second = threading.Thread(target=lambda: answered.append((schedule.fresh(10), len(readings))))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert answered == [(True, 2)]
    schedule.stop()
