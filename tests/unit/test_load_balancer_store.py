"""Load balancers and their members in the store: zones shared with ports and routers, every validation rule,
member status rules, cascades and what they journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from apps.model import HealthMonitor, LbMember, LoadBalancer
from controller.store import Store
from tests.unit.test_router_store import zones
from tests.unit.test_store import fields_of, port_body, rejected

MONITOR = {"type": "tcp", "interval_s": 5, "timeout_s": 2, "max_retries": 3}


def balancer(network: dict, *members: dict, **fields: object) -> dict:
    return {"name": "web", "network_id": network["id"], "protocol": "tcp", "port": 80,
            "members": list(members), **fields}


def member(port: dict, number: int = 8080, **fields: object) -> dict:
    return {"ip_address": port["ip_address"], "port": number, **fields}


@pytest.fixture
def net(store: Store) -> dict:
    return store.create_network({"cidr": "10.0.0.0/24"})


@pytest.fixture
def ports(store: Store, net: dict) -> list[dict]:
    return [store.create_port(port_body(net["id"], n)) for n in (1, 2, 3)]


def test_load_balancer_lifecycle(store: Store, net: dict, ports: list[dict]) -> None:
    made = store.create_load_balancer(balancer(net, member(ports[0]), member(ports[1], weight=5),
                                               vip_address="10.0.0.100", health_monitor=MONITOR))
    first, second = made["members"]
    assert made == {"id": made["id"], "name": "web", "network_id": net["id"], "vip_address": "10.0.0.100",
                    "protocol": "tcp", "port": 80, "algorithm": "source_ip_hash", "members": made["members"],
                    "health_monitor": {"type": "tcp", "interval_s": 5.0, "timeout_s": 2.0, "max_retries": 3},
                    "mac_address": "fa:16:3f:01:00:04"}  # zones 1-3 are the ports'
    assert first == {"id": first["id"], "load_balancer_id": made["id"], "ip_address": "10.0.0.11", "port": 8080,
                     "weight": 1, "admin_state_up": True, "status": "ONLINE",
                     "status_changed_at": first["status_changed_at"], "port_id": ports[0]["id"]}
    assert (second["weight"], second["port_id"]) == (5, ports[1]["id"])
    assert store.get_load_balancer(made["id"]) == made and store.list_load_balancers() == [made]
    assert store.list_load_balancers(network_id="other") == []
    changed = store.update_load_balancer(made["id"], {"name": "www", "algorithm": "hash"})
    assert changed == {**made, "name": "www", "algorithm": "hash"}
    added = store.add_lb_member(made["id"], member(ports[2], 9090))
    assert added["ip_address"] == "10.0.0.13" and store.get_lb_member(made["id"], added["id"]) == added
    assert [m["id"] for m in store.list_lb_members(made["id"])] == [first["id"], second["id"], added["id"]]
    assert store.update_lb_member(made["id"], added["id"], {"weight": 256})["weight"] == 256
    store.delete_lb_member(made["id"], added["id"])
    assert len(store.get_load_balancer(made["id"])["members"]) == 2
    store.delete_load_balancer(made["id"])
    assert store.list_load_balancers() == [] and rejected(404, store.get_load_balancer, made["id"])
    assert store.freed_zones() == {4, 5}  # its zone and its hairpin zone


def test_the_vip_defaults_to_the_lowest_free_address_and_protocol_is_case_blind(store: Store, net: dict) -> None:
    store.create_port(port_body(net["id"], 1, ip_address="10.0.0.2"))
    made = store.create_load_balancer(balancer(net, protocol="UDP", port=53))
    assert (made["vip_address"], made["protocol"], made["members"], made["health_monitor"]) == \
        ("10.0.0.3", "udp", [], None)


def test_balancer_keys_are_zones_no_port_or_router_has(store: Store, net: dict, tmp_path: Path) -> None:
    port = store.create_port(port_body(net["id"], 1))["id"]
    router = store.create_router({})["id"]
    made = store.create_load_balancer(balancer(net))
    other = store.create_port(port_body(net["id"], 2))["id"]
    assert zones(tmp_path / "sdn.db") == [(1, "port", port), (2, "router", router), (3, "load_balancer", made["id"]),
                                          (4, "lb_hairpin", made["id"]), (5, "port", other)]
    assert [(lb.key, lb.mac) for lb in store.snapshot().load_balancers] == [(3, "fa:16:3f:01:00:03")]
    assert store.get_router(router)["mac_address"] == "fa:16:3f:00:00:02"
    store.delete_load_balancer(made["id"])
    assert store.freed_zones() == {3, 4} and [z for z, *_ in zones(tmp_path / "sdn.db")] == [1, 2, 5]
    assert store.create_load_balancer(balancer(net))["mac_address"] == "fa:16:3f:01:00:06"  # not 3 again


def test_a_database_from_before_hairpins_and_floating_ips_on_vips_is_upgraded(tmp_path: Path) -> None:
    """Each balancer takes a hairpin zone (none another's), and floating IPs can map to VIPs."""
    url, path = f"sqlite:///{tmp_path}/sdn.db", tmp_path / "sdn.db"
    old = Store(url)
    net = old.create_network({"cidr": "10.0.0.0/24"})
    made = [old.create_load_balancer(balancer(net, port=port))["id"] for port in (80, 81)]
    old.close()
    with sqlite3.connect(path) as db:  # what the previous release's schema lacked
        db.executescript("""DROP INDEX ix_load_balancers_hairpin_key;
            ALTER TABLE load_balancers DROP COLUMN hairpin_key;
            CREATE TABLE old_floating_ips AS SELECT id, network_id, address, port_id, created_at FROM floating_ips;
            DROP TABLE floating_ips; ALTER TABLE old_floating_ips RENAME TO floating_ips;
            DELETE FROM zones WHERE owner_kind = 'lb_hairpin';""")
    upgraded = Store(url)
    assert [(lb.id, lb.key, lb.hairpin_key) for lb in upgraded.snapshot().load_balancers] == [
        (made[0], 1, 5), (made[1], 3, 6)]  # after the last zone handed out (4), as for any new owner
    assert upgraded.create_load_balancer(balancer(net, port=82))["mac_address"] == "fa:16:3f:01:00:07"
    ext = upgraded.create_network({"cidr": "203.0.113.0/24", "external": True})
    router = upgraded.create_router({"external_gateway": {"network_id": ext["id"]}})
    upgraded.add_router_interface(router["id"], {"network_id": net["id"]})
    floating = upgraded.create_floating_ip({"network_id": ext["id"], "load_balancer_id": made[0]})
    assert upgraded.list_floating_ips(load_balancer_id=made[0]) == [floating]
    upgraded.close()
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE load_balancers SET hairpin_key = 9")  # the unique index is back


def test_member_keys_are_unique_among_all_members_and_stay(store: Store, net: dict, ports: list[dict]) -> None:
    one = store.create_load_balancer(balancer(net, member(ports[0]), member(ports[1])))
    two = store.create_load_balancer(balancer(net, member(ports[0], 8081)))
    keys = {m.id: m.key for lb in store.snapshot().load_balancers for m in lb.members}
    assert sorted(keys.values()) == [1, 2, 3]
    store.delete_lb_member(one["id"], one["members"][0]["id"])
    store.update_lb_member(two["id"], two["members"][0]["id"], {"weight": 7, "admin_state_up": False})
    third = store.add_lb_member(one["id"], member(ports[2]))
    after = {m.id: m.key for lb in store.snapshot().load_balancers for m in lb.members}
    assert after == {one["members"][1]["id"]: 2, two["members"][0]["id"]: 3, third["id"]: 4}


def test_a_backend_serves_one_balancer_per_protocol(store: Store, net: dict, ports: list[dict]) -> None:
    """Its replies get their VIP back in its balancer's zone, and nothing in a reply tells two balancers apart."""
    one = store.create_load_balancer(balancer(net, member(ports[0])))
    error = rejected(409, store.create_load_balancer, balancer(net, member(ports[0])))
    assert one["id"] in str(error.body())
    store.create_load_balancer(balancer(net, member(ports[0]), protocol="udp"))  # another protocol: fine


def test_the_model_of_a_load_balancer(store: Store, net: dict, ports: list[dict]) -> None:
    made = store.create_load_balancer(balancer(net, member(ports[0], weight=2), member(ports[1], admin_state_up=False),
                                               vip_address="10.0.0.100", algorithm="hash", health_monitor=MONITOR))
    first, second = (m["id"] for m in made["members"])
    (model,) = store.snapshot().load_balancers
    assert model == LoadBalancer(made["id"], "web", net["id"], "10.0.0.100", "tcp", 80, "hash", 4, "fa:16:3f:01:00:04",
                                 HealthMonitor("tcp", 5.0, 2.0, 3),
                                 (LbMember(first, made["id"], "10.0.0.11", 8080, 2, True, "ONLINE", 1),
                                  LbMember(second, made["id"], "10.0.0.12", 8080, 1, False, "DRAINING", 2)), 5)
    assert store.objects({("load_balancer", made["id"]), ("lb_member", second)}) == {
        ("load_balancer", made["id"]): model, ("lb_member", second): model.members[1]}


def test_every_change_is_journaled_by_kind(store: Store, net: dict, ports: list[dict]) -> None:
    revision = store.revision()
    made = store.create_load_balancer(balancer(net, member(ports[0])))
    lb, first = made["id"], made["members"][0]["id"]
    assert store.changes_since(revision)[1] == {("load_balancer", lb), ("lb_member", first)}
    revision = store.revision()
    store.update_load_balancer(lb, {"name": "x"})
    assert store.changes_since(revision)[1] == {("load_balancer", lb)}
    revision = store.revision()
    second = store.add_lb_member(lb, member(ports[1]))["id"]
    store.update_lb_member(lb, second, {"weight": 3})
    assert store.changes_since(revision)[1] == {("lb_member", second)}
    revision = store.revision()
    store.delete_load_balancer(lb)  # its members go with it, each journaled
    latest, changed = store.changes_since(revision)
    assert changed == {("load_balancer", lb), ("lb_member", first), ("lb_member", second)} and latest == revision + 3
    assert set(store.objects(changed).values()) == {None}


def test_member_status_follows_the_monitor_and_admin_state(store: Store, net: dict, ports: list[dict]) -> None:
    made = store.create_load_balancer(balancer(net, member(ports[0]), member(ports[1])))
    lb, (first, second) = made["id"], (m["id"] for m in made["members"])

    def statuses() -> list[str]:
        return [m["status"] for m in store.get_load_balancer(lb)["members"]]

    assert statuses() == ["NO_MONITOR", "NO_MONITOR"]
    assert store.set_member_status(first, "OFFLINE", at=1000.0) is False  # nothing monitors it
    revision = store.revision()
    assert [m["status"] for m in store.update_load_balancer(lb, {"health_monitor": MONITOR})["members"]] == \
        ["ONLINE", "ONLINE"]  # a monitor starts its members ONLINE
    assert store.changes_since(revision)[1] == {("load_balancer", lb), ("lb_member", first), ("lb_member", second)}
    revision = store.revision()
    assert store.set_member_status(first, "OFFLINE", at=1000.0) is True
    assert store.set_member_status(first, "OFFLINE", at=1005.0) is False  # no change: not journaled
    assert store.changes_since(revision)[1] == {("lb_member", first)}
    shown = store.get_lb_member(lb, first)
    assert (shown["status"], shown["status_changed_at"]) == ("OFFLINE", "1970-01-01T00:16:40+00:00")
    assert store.objects({("lb_member", first)})[("lb_member", first)].status == "OFFLINE"
    replaced = store.update_load_balancer(lb, {"health_monitor": {**MONITOR, "type": "udp"}})
    assert [m["status"] for m in replaced["members"]] == ["OFFLINE", "ONLINE"]  # a replaced monitor keeps findings
    assert store.update_lb_member(lb, first, {"admin_state_up": False})["status"] == "DRAINING"
    assert store.set_member_status(first, "ONLINE", at=1010.0) is False  # a drained member is not probed
    assert store.update_lb_member(lb, first, {"admin_state_up": True})["status"] == "ONLINE"  # re-enabled: ONLINE
    revision = store.revision()
    assert statuses() == ["ONLINE", "ONLINE"]
    store.update_load_balancer(lb, {"health_monitor": None})
    assert statuses() == ["NO_MONITOR", "NO_MONITOR"]
    assert store.changes_since(revision)[1] == {("load_balancer", lb), ("lb_member", first), ("lb_member", second)}
    assert store.set_member_status("gone", "ONLINE", at=1.0) is False
    assert fields_of(rejected(400, store.set_member_status, first, "DRAINING", 1.0)) == ["status"]


@pytest.mark.parametrize(("fields", "field"), [
    ({"protocol": "http"}, "protocol"),
    ({"port": 0}, "port"),
    ({"port": 65536}, "port"),
    ({"algorithm": "round_robin"}, "algorithm"),
    ({"vip_address": "10.0.1.5"}, "vip_address"),
    ({"vip_address": "10.0.0.255"}, "vip_address"),
    ({"vip_address": "x"}, "vip_address"),
    ({"members": [{"ip_address": "10.0.0.11", "port": 80, "weight": 0}]}, "members[0].weight"),
    ({"members": [{"ip_address": "10.0.0.11", "port": 80, "weight": 257}]}, "members[0].weight"),
    ({"members": [{"ip_address": "10.0.0.11"}]}, "members[0].port"),
    ({"members": [{"ip_address": "10.0.0.11", "port": 80}, {"ip_address": "10.0.0.99", "port": 80}]},
     "members[1].ip_address"),  # no port has it
    ({"health_monitor": {**MONITOR, "type": "http"}}, "health_monitor.type"),
    ({"health_monitor": {**MONITOR, "interval_s": 0}}, "health_monitor.interval_s"),
    ({"health_monitor": {**MONITOR, "timeout_s": -1}}, "health_monitor.timeout_s"),
    ({"health_monitor": {**MONITOR, "timeout_s": 6}}, "health_monitor.timeout_s"),  # longer than the interval
    ({"health_monitor": {**MONITOR, "max_retries": 0}}, "health_monitor.max_retries"),
    ({"health_monitor": {**MONITOR, "max_retries": 11}}, "health_monitor.max_retries"),
    ({"health_monitor": {"type": "tcp"}}, "health_monitor.interval_s"),
])
def test_an_invalid_load_balancer_is_400_naming_the_field_and_takes_nothing(
        store: Store, net: dict, ports: list[dict], tmp_path: Path, fields: dict, field: str) -> None:
    revision, taken = store.revision(), zones(tmp_path / "sdn.db")
    assert fields_of(rejected(400, store.create_load_balancer, balancer(net, **fields)))[0] == field
    assert store.list_load_balancers() == [] and zones(tmp_path / "sdn.db") == taken
    assert store.changes_since(revision) == (revision, set())


def test_the_vip_network_exists_and_is_not_external(store: Store) -> None:
    assert fields_of(rejected(404, store.create_load_balancer, balancer({"id": "nope"}))) == ["network_id"]
    ext = store.create_network({"cidr": "203.0.113.0/24", "external": True})
    assert fields_of(rejected(400, store.create_load_balancer, balancer(ext))) == ["network_id"]


def test_the_vip_collides_with_nothing(store: Store, net: dict, ports: list[dict]) -> None:
    router = store.create_router({})
    store.add_router_interface(router["id"], {"network_id": net["id"]})
    for address, holder in (("10.0.0.11", ports[0]["id"]), ("10.0.0.1", net["id"])):
        error = rejected(409, store.create_load_balancer, balancer(net, vip_address=address))
        assert fields_of(error) == ["vip_address"] and holder in error.message
    made = store.create_load_balancer(balancer(net, vip_address="10.0.0.100"))
    error = rejected(409, store.create_load_balancer, balancer(net, vip_address="10.0.0.100", port=443))
    assert fields_of(error) == ["vip_address"] and f"load balancer {made['id']}" in error.message
    error = rejected(409, store.create_port, port_body(net["id"], 9, ip_address="10.0.0.100"))
    assert fields_of(error) == ["ip_address"] and made["id"] in error.message
    error = rejected(409, store.create_port, port_body(net["id"], 9, mac_address=made["mac_address"]))
    assert fields_of(error) == ["mac_address"] and made["id"] in error.message
    other = store.create_network({"cidr": "10.0.0.0/24"})  # the same address on another network is another VIP
    assert store.create_load_balancer(balancer(other, vip_address="10.0.0.100"))["vip_address"] == "10.0.0.100"


def test_duplicate_members_are_409(store: Store, net: dict, ports: list[dict]) -> None:
    error = rejected(409, store.create_load_balancer, balancer(net, member(ports[0]), member(ports[0])))
    assert fields_of(error) == ["members[1]"] and store.list_load_balancers() == []
    made = store.create_load_balancer(balancer(net, member(ports[0])))
    assert fields_of(rejected(409, store.add_lb_member, made["id"], member(ports[0]))) == ["ip_address"]
    assert store.add_lb_member(made["id"], member(ports[0], 8081))["port"] == 8081  # another port is another member


def test_members_are_ports_on_networks_the_vip_reaches(store: Store, net: dict, ports: list[dict]) -> None:
    far = store.create_network({"cidr": "10.1.0.0/24"})
    remote = store.create_port(port_body(far["id"], 4, ip_address="10.1.0.5"))
    made = store.create_load_balancer(balancer(net))
    error = rejected(400, store.add_lb_member, made["id"], member(remote))
    assert fields_of(error) == ["ip_address"] and "no port has on a network the VIP can reach" in error.message
    router = store.create_router({})
    for network in (net, far):
        store.add_router_interface(router["id"], {"network_id": network["id"]})
    joined = store.add_lb_member(made["id"], member(remote))
    assert joined["port_id"] == remote["id"]
    error = rejected(409, store.remove_router_interface, router["id"], far["id"])
    assert fields_of(error) == ["network_id"] and joined["id"] in str(error.details)
    error = rejected(409, store.remove_router_interface, router["id"], net["id"])
    assert fields_of(error) == ["network_id"]
    assert len(store.get_router(router["id"])["interfaces"]) == 2
    store.delete_lb_member(made["id"], joined["id"])
    store.remove_router_interface(router["id"], far["id"])


def test_what_members_and_vips_need_stays(store: Store, net: dict, ports: list[dict]) -> None:
    made = store.create_load_balancer(balancer(net, member(ports[0])))
    error = rejected(409, store.delete_port, ports[0]["id"])
    assert made["id"] in error.message + str(error.details) and "member" in error.message
    error = rejected(409, store.update_port, ports[0]["id"], {"ip_address": "10.0.0.50"})
    assert fields_of(error) == ["ip_address"]
    assert store.update_port(ports[0]["id"], {"name": "kept"})["ip_address"] == "10.0.0.11"
    error = rejected(409, store.delete_network, net["id"])
    assert "load balancer" in error.message
    assert fields_of(rejected(409, store.update_network, net["id"], {"external": True})) == ["external"]
    error = rejected(409, store.update_network, net["id"], {"cidr": "10.9.0.0/24"})
    assert set(fields_of(error)) == {"cidr"} and "1 load balancer(s)" in error.message
    assert fields_of(rejected(409, store.update_network, net["id"], {"gateway_ip": made["vip_address"]})) == \
        ["gateway_ip"]
    store.delete_load_balancer(made["id"])
    store.delete_port(ports[0]["id"])


def test_unknown_balancers_and_members_are_404(store: Store, net: dict, ports: list[dict]) -> None:
    one = store.create_load_balancer(balancer(net, member(ports[0])))
    two = store.create_load_balancer(balancer(net))
    theirs = one["members"][0]["id"]
    for call, args in [
        (store.get_load_balancer, ("nope",)),
        (store.update_load_balancer, ("nope", {"name": "x"})),
        (store.delete_load_balancer, ("nope",)),
        (store.add_lb_member, ("nope", member(ports[1]))),
        (store.list_lb_members, ("nope",)),
        (store.get_lb_member, (one["id"], "nope")),
        (store.get_lb_member, (two["id"], theirs)),  # not its member
        (store.update_lb_member, (two["id"], theirs, {"weight": 2})),
        (store.delete_lb_member, (two["id"], theirs)),
    ]:
        rejected(404, call, *args)
    assert store.get_load_balancer(one["id"]) == one


def test_a_patch_changes_only_what_it_may(store: Store, net: dict, ports: list[dict]) -> None:
    made = store.create_load_balancer(balancer(net, member(ports[0]), health_monitor=MONITOR))
    revision = store.revision()
    for body, field in [({"vip_address": "10.0.0.99"}, "vip_address"), ({"port": 81}, "port"),
                        ({"protocol": "udp"}, "protocol"), ({"network_id": net["id"]}, "network_id"),
                        ({"members": []}, "members"), ({"algorithm": "rr"}, "algorithm"),
                        ({"health_monitor": {**MONITOR, "timeout_s": 9}}, "health_monitor.timeout_s")]:
        assert fields_of(rejected(400, store.update_load_balancer, made["id"], body)) == [field]
    member_id = made["members"][0]["id"]
    for body, field in [({"ip_address": "10.0.0.12"}, "ip_address"), ({"port": 1}, "port"), ({"weight": 0}, "weight")]:
        assert fields_of(rejected(400, store.update_lb_member, made["id"], member_id, body)) == [field]
    assert store.get_load_balancer(made["id"]) == made and store.changes_since(revision) == (revision, set())
    assert store.update_load_balancer(made["id"], {"health_monitor": None})["health_monitor"] is None
