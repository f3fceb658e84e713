"""Routers, floating IPs and uplinks in the store: the zone allocator they share with ports, every validation
rule, allocation of addresses, and what they journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from apps.model import FloatingIP, Router, RouterGateway, RouterInterface, StaticRoute
from controller.store import Store
from tests.unit.test_store import DPID, fields_of, port_body, rejected


def zones(path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT zone, owner_kind, owner_id FROM zones ORDER BY zone").fetchall()


# -- zones ---------------------------------------------------------------------------------------


def test_a_database_from_before_zones_keeps_its_port_keys_as_zones(tmp_path: Path) -> None:
    """Port keys become zones held by their ports; freed port keys stay freed; the high-water mark carries over."""
    url, path = f"sqlite:///{tmp_path}/sdn.db", tmp_path / "sdn.db"
    old = Store(url)
    net = old.create_network({"cidr": "10.0.0.0/24"})
    ports = [old.create_port(port_body(net["id"], n))["id"] for n in (1, 2, 3)]
    old.delete_port(ports[2])  # key 3: freed, and the high-water mark
    old.delete_port(ports[0])  # key 1: freed
    old.close()
    with sqlite3.connect(path) as db:  # the previous release's tables
        db.executescript(
            """DROP TABLE zones; DROP TABLE freed_zones;
            CREATE TABLE freed_port_keys ("key" INTEGER NOT NULL PRIMARY KEY, freed_at DATETIME NOT NULL);
            INSERT INTO freed_port_keys VALUES (1, '2024-01-01 00:00:00'), (3, '2024-01-01 00:00:00');
            UPDATE counters SET name = 'port_key' WHERE name = 'zone';"""
        )
    upgraded = Store(url)
    assert [(p.id, p.key) for p in upgraded.snapshot().ports] == [(ports[1], 2)]
    assert zones(path) == [(2, "port", ports[1])]
    assert upgraded.freed_zones() == {1, 3}
    fourth = upgraded.create_port(port_body(net["id"], 4))["id"]
    assert {p.id: p.key for p in upgraded.snapshot().ports} == {ports[1]: 2, fourth: 4}  # not 1, not 3
    upgraded.close()
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "freed_port_keys" not in tables


def test_a_deleted_ports_zone_is_freed_until_it_is_handed_out_again(store: Store, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    first, second = (store.create_port(port_body(net["id"], n))["id"] for n in (1, 2))
    assert zones(tmp_path / "sdn.db") == [(1, "port", first), (2, "port", second)]
    store.delete_port(first)
    assert zones(tmp_path / "sdn.db") == [(2, "port", second)] and store.freed_zones() == {1}
    monkeypatch.setattr("controller.store.ZONES", range(1, 3))
    again = store.create_port(port_body(net["id"], 3))["id"]
    assert zones(tmp_path / "sdn.db") == [(1, "port", again), (2, "port", second)] and store.freed_zones() == set()


# -- uplinks -------------------------------------------------------------------------------------

UPLINK = {"dpid": DPID, "interface": "s1-eth9"}
EXTERNAL = {"cidr": "203.0.113.0/24", "external": True}


def external(store: Store, **fields: object) -> dict:
    return store.create_network({**EXTERNAL, **fields})


def test_an_external_network_has_an_uplink_that_patch_sets_and_clears(store: Store) -> None:
    net = external(store, uplink={"dpid": DPID.upper(), "interface": "s1-eth9"})
    assert net["uplink"] == UPLINK and store.get_network(net["id"]) == net
    assert store.snapshot().networks[0].uplink == (DPID, "s1-eth9")
    assert store.update_network(net["id"], {"uplink": None})["uplink"] is None
    assert store.snapshot().networks[0].uplink is None
    moved = store.update_network(net["id"], {"uplink": {"dpid": DPID, "interface": "s1-eth8"}})
    assert moved["uplink"] == {"dpid": DPID, "interface": "s1-eth8"}
    assert store.update_network(net["id"], {"name": "kept"})["uplink"] == moved["uplink"]


def test_an_uplink_is_for_external_networks_only(store: Store) -> None:
    assert fields_of(rejected(409, store.create_network, {"cidr": "10.0.0.0/24", "uplink": UPLINK})) == ["uplink"]
    internal = store.create_network({"cidr": "10.0.0.0/24"})
    assert fields_of(rejected(409, store.update_network, internal["id"], {"uplink": UPLINK})) == ["uplink"]
    net = external(store, uplink=UPLINK)
    assert fields_of(rejected(409, store.update_network, net["id"], {"external": False})) == ["external"]
    assert store.get_network(net["id"]) == net
    both = store.update_network(net["id"], {"external": False, "uplink": None})
    assert (both["external"], both["uplink"]) == (False, None)


@pytest.mark.parametrize(("body", "field"), [
    ({"uplink": {"dpid": "1", "interface": "s1-eth9"}}, "uplink.dpid"),
    ({"uplink": {"dpid": DPID}}, "uplink.interface"),
    ({"uplink": {"dpid": DPID, "interface": "bad/name"}}, "uplink.interface"),
    ({"uplink": "s1-eth9"}, "uplink"),
])
def test_an_invalid_uplink_is_400(store: Store, body: dict, field: str) -> None:
    assert fields_of(rejected(400, store.create_network, {"cidr": "10.0.0.0/24", "external": True, **body})) == [field]
    assert store.list_networks() == []


def test_an_uplink_interface_carries_nothing_else(store: Store) -> None:
    internal = store.create_network({"cidr": "10.0.0.0/24"})
    port = store.create_port(port_body(internal["id"], 1))  # bound to s1-eth1
    bound = {"dpid": DPID, "interface": "s1-eth1"}
    error = rejected(409, store.create_network, {**EXTERNAL, "uplink": bound})
    assert fields_of(error) == ["uplink"] and port["id"] in error.message
    store.update_switch(DPID, {"trunk_ports": ["s1-eth7"]})
    pinned = {"dpid": DPID, "interface": "s1-eth7"}
    assert fields_of(rejected(409, store.create_network, {**EXTERNAL, "uplink": pinned})) == ["uplink"]
    net = external(store, uplink=UPLINK)
    error = rejected(409, store.create_network, {**EXTERNAL, "cidr": "198.51.100.0/24", "uplink": UPLINK})
    assert fields_of(error) == ["uplink"] and net["id"] in error.message
    # ... and the other way round: no port is bound to an uplink, no switch pins one as a trunk.
    error = rejected(409, store.create_port, port_body(internal["id"], 2, binding=UPLINK))
    assert fields_of(error) == ["binding"] and net["id"] in error.message
    assert fields_of(rejected(409, store.update_port, port["id"], {"binding": UPLINK})) == ["binding"]
    error = rejected(409, store.update_switch, DPID, {"trunk_ports": ["s1-eth7", "s1-eth9"]})
    assert fields_of(error) == ["trunk_ports"] and net["id"] in error.message
    assert store.switch_configs() == {DPID: {"trunk_ports": ["s1-eth7"]}}
    assert [n["uplink"] for n in store.list_networks()] == [None, UPLINK]


def test_uplink_changes_are_journaled(store: Store) -> None:
    net = external(store)
    revision = store.revision()
    store.update_network(net["id"], {"uplink": UPLINK})
    assert store.changes_since(revision)[1] == {("network", net["id"])}
    assert store.objects({("network", net["id"])})[("network", net["id"])].uplink == (DPID, "s1-eth9")


def test_a_database_from_before_uplinks_gets_the_columns_and_their_index(tmp_path: Path) -> None:
    url, path = f"sqlite:///{tmp_path}/sdn.db", tmp_path / "sdn.db"
    old = Store(url)
    net = old.create_network({"cidr": "203.0.113.0/24", "external": True})
    old.close()
    with sqlite3.connect(path) as db:
        db.executescript("""DROP INDEX ix_networks_uplink; ALTER TABLE networks DROP COLUMN uplink_dpid;
                         ALTER TABLE networks DROP COLUMN uplink_interface;""")
    upgraded = Store(url)
    assert upgraded.get_network(net["id"])["uplink"] is None
    assert upgraded.update_network(net["id"], {"uplink": UPLINK})["uplink"] == UPLINK
    upgraded.close()
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO networks (id, name, cidr, segmentation_id, external, uplink_dpid, uplink_interface, "
                   f"created_at) VALUES ('x', '', '10.0.0.0/24', 99, 1, '{DPID}', 's1-eth9', '2024-01-01')")


# -- routers -------------------------------------------------------------------------------------


def internal(store: Store, cidr: str = "10.0.0.0/24", **fields: object) -> dict:
    return store.create_network({"cidr": cidr, **fields})


def gateway(network: dict, **fields: object) -> dict:
    return {"external_gateway": {"network_id": network["id"], **fields}}


def test_router_lifecycle(store: Store) -> None:
    ext, net = external(store), internal(store)
    router = store.create_router({"name": "r1", **gateway(ext)})
    assert router == {"id": router["id"], "name": "r1", "routes": [], "interfaces": [],
                      "external_gateway": {"network_id": ext["id"], "ip_address": "203.0.113.2", "enable_snat": True},
                      "mac_address": "fa:16:3f:00:00:01", "mac_bindings": []}
    assert store.get_router(router["id"]) == router and store.list_routers() == [router]
    attached = store.add_router_interface(router["id"], {"network_id": net["id"]})
    assert attached["interfaces"] == [{"network_id": net["id"], "ip_address": "10.0.0.1"}]
    changed = store.update_router(router["id"], {"name": "r2", "routes": [{"destination": "192.168.0.0/16",
                                                                            "nexthop": "10.0.0.254"}]})
    assert changed == {**attached, "name": "r2", "routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]}
    assert store.update_router(router["id"], {"routes": []})["routes"] == []
    store.remove_router_interface(router["id"], net["id"])
    store.delete_router(router["id"])
    assert store.list_routers() == [] and rejected(404, store.get_router, router["id"])


def test_a_router_needs_nothing_but_may_have_everything(store: Store) -> None:
    bare = store.create_router({})
    assert (bare["name"], bare["external_gateway"], bare["routes"]) == ("", None, [])
    ext = external(store)
    full = store.create_router({**gateway(ext, ip_address="203.0.113.50", enable_snat=False),
                                "routes": [{"destination": "0.0.0.0/0", "nexthop": "203.0.113.1"}]})
    assert full["external_gateway"] == {"network_id": ext["id"], "ip_address": "203.0.113.50", "enable_snat": False}


def test_the_model_of_a_router(store: Store) -> None:
    ext, a, b = external(store), internal(store), internal(store, "10.1.0.0/24", gateway_ip="10.1.0.254")
    routes = [{"destination": "192.168.0.0/16", "nexthop": "203.0.113.1"},
              {"destination": "0.0.0.0/0", "nexthop": "203.0.113.1"}]
    router = store.create_router({"name": "r", **gateway(ext), "routes": routes})
    store.add_router_interface(router["id"], {"network_id": b["id"]})
    store.add_router_interface(router["id"], {"network_id": a["id"]})
    (model,) = store.snapshot().routers
    assert model == Router(router["id"], "r", "fa:16:3f:00:00:01", 1,
                           (RouterInterface(b["id"], "10.1.0.254"), RouterInterface(a["id"], "10.0.0.1")),
                           RouterGateway(ext["id"], "203.0.113.2", True),
                           (StaticRoute("192.168.0.0/16", "203.0.113.1"), StaticRoute("0.0.0.0/0", "203.0.113.1")))
    assert store.objects({("router", router["id"])}) == {("router", router["id"]): model}


def test_every_router_change_is_journaled(store: Store) -> None:
    ext, net = external(store), internal(store)
    revision = store.revision()
    router = store.create_router({})["id"]
    store.update_router(router, gateway(ext))
    store.add_router_interface(router, {"network_id": net["id"]})
    store.remove_router_interface(router, net["id"])
    store.delete_router(router)
    latest, changed = store.changes_since(revision)
    assert changed == {("router", router)} and latest == revision + 5
    assert store.objects(changed) == {("router", router): None}


def test_router_keys_are_zones_no_port_has_and_are_not_soon_reused(store: Store, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    net = internal(store)
    port = store.create_port(port_body(net["id"], 1))["id"]
    first = store.create_router({})["id"]
    second_port = store.create_port(port_body(net["id"], 2))["id"]
    assert zones(tmp_path / "sdn.db") == [(1, "port", port), (2, "router", first), (3, "port", second_port)]
    assert [r.key for r in store.snapshot().routers] == [2]
    store.delete_router(first)
    assert store.freed_zones() == {2}
    again = store.create_router({})
    assert (again["mac_address"], store.snapshot().routers[0].key) == ("fa:16:3f:00:00:04", 4)  # not 2 again
    monkeypatch.setattr("controller.store.ZONES", range(1, 6))
    store.create_port(port_body(net["id"], 3))  # 5
    wrapped = store.create_router({})  # past the end: the lowest free zone, the freed one
    assert wrapped["mac_address"] == "fa:16:3f:00:00:02" and store.freed_zones() == set()
    assert fields_of(rejected(409, store.create_router, {})) == ["key"]  # all five taken
    assert len(store.list_routers()) == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"name": 5}, "name"),
    ({"external_gateway": "ext"}, "external_gateway"),
    ({"external_gateway": {}}, "external_gateway.network_id"),
    ({"external_gateway": {"network_id": "EXT", "enable_snat": "yes"}}, "external_gateway.enable_snat"),
    ({"external_gateway": {"network_id": "EXT", "ip_address": "300.0.0.1"}}, "external_gateway.ip_address"),
    ({"external_gateway": {"network_id": "EXT", "port": 1}}, "external_gateway.port"),
    ({"external_gateway": {"network_id": "EXT", "ip_address": "198.51.100.1"}}, "external_gateway.ip_address"),
    ({"external_gateway": {"network_id": "EXT", "ip_address": "203.0.113.0"}}, "external_gateway.ip_address"),
    ({"external_gateway": {"network_id": "EXT", "ip_address": "203.0.113.255"}}, "external_gateway.ip_address"),
    ({"external_gateway": {"network_id": "INTERNAL"}}, "external_gateway.network_id"),
    ({"routes": {"destination": "0.0.0.0/0"}}, "routes"),
    ({"routes": [{"destination": "10.0.0.1/8", "nexthop": "203.0.113.1"}]}, "routes[0].destination"),
    ({"routes": [{"destination": "10.0.0.0/8"}]}, "routes[0].nexthop"),
    ({"routes": [{"destination": "10.0.0.0/8", "nexthop": "x"}]}, "routes[0].nexthop"),
    ({"routes": [{"destination": "10.0.0.0/8", "nexthop": "203.0.113.1"}]}, "routes[0].nexthop"),  # no gateway
    ({"external_gateway": {"network_id": "EXT"}, "routes": [{"destination": "10.0.0.0/8", "nexthop": "203.0.113.1"},
                                                            {"destination": "10.0.0.0/8", "nexthop": "10.9.9.9"}]},
     "routes[1].nexthop"),  # on none of its networks
    ({"external_gateway": {"network_id": "EXT"}, "routes": [{"destination": "10.0.0.0/8", "nexthop": "203.0.113.2"}]},
     "routes[0].nexthop"),  # its own address
    ({"external_gateway": {"network_id": "EXT"}, "routes": [{"destination": "10.0.0.0/8", "nexthop": "203.0.113.1"},
                                                            {"destination": "10.0.0.0/8", "nexthop": "203.0.113.1"}]},
     "routes[1]"),
])
def test_an_invalid_router_is_400_naming_the_field_and_takes_nothing(store: Store, tmp_path: Path, body: dict,
                                                                       field: str) -> None:
    ids = {"EXT": external(store)["id"], "INTERNAL": internal(store)["id"]}
    if isinstance(body.get("external_gateway"), dict) and "network_id" in body["external_gateway"]:
        body = {**body, "external_gateway": {**body["external_gateway"],
                                             "network_id": ids[body["external_gateway"]["network_id"]]}}
    assert fields_of(rejected(400, store.create_router, body)) == [field]
    assert store.list_routers() == [] and zones(tmp_path / "sdn.db") == []
    assert store.create_router({})["mac_address"] == "fa:16:3f:00:00:01"  # the zone was not taken either


def test_unknown_routers_and_networks_are_404(store: Store) -> None:
    net = internal(store)
    router = store.create_router({})["id"]
    for call, args, field in [
        (store.get_router, ("nope",), None),
        (store.update_router, ("nope", {"name": "x"}), None),
        (store.delete_router, ("nope",), None),
        (store.add_router_interface, ("nope", {"network_id": net["id"]}), None),
        (store.remove_router_interface, ("nope", net["id"]), None),
        (store.create_router, (gateway({"id": "nope"}),), "external_gateway.network_id"),
        (store.update_router, (router, gateway({"id": "nope"})), "external_gateway.network_id"),
        (store.add_router_interface, (router, {"network_id": "nope"}), "network_id"),
        (store.remove_router_interface, (router, net["id"]), "network_id"),  # not on it
    ]:
        error = rejected(404, call, *args)
        assert fields_of(error) == [field]


def test_gateway_addresses_are_the_lowest_free_and_collide_with_nothing(store: Store) -> None:
    ext = external(store, gateway_ip="203.0.113.3")
    store.create_port(port_body(ext["id"], 1, ip_address="203.0.113.1"))
    first = store.create_router(gateway(ext))
    assert first["external_gateway"]["ip_address"] == "203.0.113.2"
    assert store.create_router(gateway(ext))["external_gateway"]["ip_address"] == "203.0.113.4"  # .3: the gateway
    for address, holder in (("203.0.113.1", "port"), ("203.0.113.2", "router"), ("203.0.113.3", "gateway")):
        error = rejected(409, store.create_router, gateway(ext, ip_address=address))
        assert fields_of(error) == ["external_gateway.ip_address"] and holder in error.message
    # ... and the other way round: a port cannot take a router's gateway address.
    error = rejected(409, store.create_port, port_body(ext["id"], 2, ip_address="203.0.113.2"))
    assert fields_of(error) == ["ip_address"] and first["id"] in error.message
    small = store.create_network({"cidr": "198.51.100.0/30", "external": True})  # .1 gateway, .2 free
    store.create_router(gateway(small))
    assert fields_of(rejected(409, store.create_router, gateway(small))) == ["external_gateway.ip_address"]


def test_patching_the_gateway_keeps_moves_or_removes_it(store: Store) -> None:
    ext, other = external(store), external(store, cidr="198.51.100.0/24")
    router = store.create_router(gateway(ext, ip_address="203.0.113.9"))["id"]
    kept = store.update_router(router, gateway(ext, enable_snat=False))["external_gateway"]
    assert kept == {"network_id": ext["id"], "ip_address": "203.0.113.9", "enable_snat": False}
    assert store.update_router(router, gateway(ext, ip_address="203.0.113.9"))["external_gateway"]["enable_snat"]
    assert store.update_router(router, gateway(ext, ip_address="203.0.113.7"))["external_gateway"]["ip_address"] == \
        "203.0.113.7"
    moved = store.update_router(router, gateway(other))["external_gateway"]
    assert (moved["network_id"], moved["ip_address"]) == (other["id"], "198.51.100.2")
    assert store.update_router(router, {"external_gateway": None})["external_gateway"] is None
    assert store.create_router(gateway(ext))["external_gateway"]["ip_address"] == "203.0.113.2"  # all given back


def test_interfaces_take_the_networks_gateway_ip_on_one_router_only(store: Store) -> None:
    a, b = internal(store), internal(store, "10.1.0.0/24")
    router, other = store.create_router({})["id"], store.create_router({})["id"]
    store.add_router_interface(router, {"network_id": a["id"]})
    for target, net in ((other, a), (router, a)):
        error = rejected(409, store.add_router_interface, target, {"network_id": net["id"]})
        assert fields_of(error) == ["network_id"] and router in error.message
    no_gateway = internal(store, "10.2.0.0/24", gateway_ip=None)
    assert fields_of(rejected(409, store.add_router_interface, router, {"network_id": no_gateway["id"]})) == \
        ["network_id"]
    ext = external(store)
    assert fields_of(rejected(400, store.add_router_interface, router, {"network_id": ext["id"]})) == ["network_id"]
    assert fields_of(rejected(400, store.add_router_interface, router, {})) == ["network_id"]
    assert fields_of(rejected(400, store.add_router_interface, router, {"network_id": a["id"], "x": 1})) == ["x"]
    store.add_router_interface(other, {"network_id": b["id"]})
    assert [len(r["interfaces"]) for r in store.list_routers()] == [1, 1]


def test_a_routers_networks_never_overlap(store: Store) -> None:
    ext = external(store, cidr="10.0.0.0/16")
    wide, inside = internal(store, "10.1.0.0/16"), internal(store, "10.1.2.0/24")
    router = store.create_router({})["id"]
    store.add_router_interface(router, {"network_id": wide["id"]})
    error = rejected(409, store.add_router_interface, router, {"network_id": inside["id"]})
    assert fields_of(error) == ["network_id"] and wide["id"] in error.message
    store.create_router({})  # another router may have it
    overlapping = external(store, cidr="10.1.128.0/17")
    assert fields_of(rejected(409, store.update_router, router, gateway(overlapping))) == \
        ["external_gateway.network_id"]
    store.update_router(router, gateway(ext))
    assert fields_of(rejected(409, store.add_router_interface, router, {"network_id": internal(store, "10.0.5.0/24")[
        "id"]})) == ["network_id"]
    # Moving the gateway to a network that overlaps only the one it leaves is fine.
    store.update_router(router, gateway(external(store, cidr="10.0.128.0/24")))


def test_a_router_and_a_port_never_share_a_mac_on_a_network(store: Store) -> None:
    ext, net, elsewhere = external(store), internal(store), internal(store, "10.5.0.0/24")
    router = store.create_router(gateway(ext))
    store.add_router_interface(router["id"], {"network_id": net["id"]})
    mac = router["mac_address"]
    for network in (net, ext):
        error = rejected(409, store.create_port, port_body(network["id"], 7, mac_address=mac.upper(),
                                                           ip_address=network["cidr"].replace("0/24", "7")))
        assert fields_of(error) == ["mac_address"] and router["id"] in error.message
    port = store.create_port(port_body(net["id"], 1))
    assert fields_of(rejected(409, store.update_port, port["id"], {"mac_address": mac})) == ["mac_address"]
    twin = store.create_port(port_body(elsewhere["id"], 2, mac_address=mac, ip_address="10.5.0.12"))  # not its network
    other = store.create_router({})
    assert other["mac_address"] != mac
    error = rejected(409, store.add_router_interface, router["id"], {"network_id": elsewhere["id"]})
    assert fields_of(error) == ["network_id"] and twin["id"] in error.message
    ext2 = external(store, cidr="198.51.100.0/24")
    store.create_port(port_body(ext2["id"], 3, mac_address=mac, ip_address="198.51.100.13"))
    assert fields_of(rejected(409, store.update_router, router["id"], gateway(ext2))) == ["external_gateway.network_id"]


def test_networks_a_router_is_on_keep_their_gateway_cidr_kind_and_existence(store: Store) -> None:
    ext, net = external(store), internal(store)
    router = store.create_router(gateway(ext))["id"]
    store.add_router_interface(router, {"network_id": net["id"]})
    for network, body, field in [
        (net, {"gateway_ip": "10.0.0.254"}, "gateway_ip"),
        (net, {"gateway_ip": None}, "gateway_ip"),
        (net, {"cidr": "10.9.0.0/24"}, "cidr"),
        (net, {"external": True}, "external"),
        (ext, {"external": False}, "external"),
        (ext, {"cidr": "198.51.100.0/24"}, "cidr"),
        (ext, {"gateway_ip": "203.0.113.2"}, "gateway_ip"),  # the router's gateway address
    ]:
        error = rejected(409, store.update_network, network["id"], body)
        assert fields_of(error) == [field] and router in str(error.details), body
    assert store.update_network(ext["id"], {"gateway_ip": "203.0.113.254"})["gateway_ip"] == "203.0.113.254"
    for network in (net, ext):
        error = rejected(409, store.delete_network, network["id"])
        assert error.details == [{"field": "id", "message": f"used by router {router}"}]
    assert store.update_network(net["id"], {"name": "renamed"})["name"] == "renamed"


def test_a_router_with_interfaces_cannot_be_deleted(store: Store) -> None:
    a, b = internal(store), internal(store, "10.1.0.0/24")
    router = store.create_router({})["id"]
    for net in (a, b):
        store.add_router_interface(router, {"network_id": net["id"]})
    error = rejected(409, store.delete_router, router)
    assert error.details == [{"field": "id", "message": f"used by its interface on network {net['id']}"}
                             for net in (a, b)]
    assert "2 interface(s)" in error.message and store.get_router(router)["interfaces"]


def test_routes_keep_their_nexthops_reachable(store: Store) -> None:
    ext, net = external(store), internal(store)
    router = store.create_router(gateway(ext))["id"]
    store.add_router_interface(router, {"network_id": net["id"]})
    routes = [{"destination": "0.0.0.0/0", "nexthop": "203.0.113.77"}, {"destination": "192.168.0.0/16",
                                                                           "nexthop": "10.0.0.99"}]
    store.update_router(router, {"routes": routes})
    error = rejected(409, store.remove_router_interface, router, net["id"])
    assert fields_of(error) == ["network_id"] and "192.168.0.0/16 via 10.0.0.99" in error.message
    error = rejected(409, store.update_router, router, {"external_gateway": None})
    assert fields_of(error) == ["external_gateway"] and "0.0.0.0/0 via 203.0.113.77" in error.message
    error = rejected(409, store.update_router, router, gateway(ext, ip_address="203.0.113.77"))
    assert fields_of(error) == ["external_gateway"] and "the router's own address" in error.message
    assert store.get_router(router)["routes"] == routes and len(store.get_router(router)["interfaces"]) == 1
    # Routes and gateway changed together: the new routes are checked against the new networks.
    assert store.update_router(router, {"external_gateway": None, "routes": routes[1:]})["external_gateway"] is None
    store.update_router(router, {"routes": []})
    store.remove_router_interface(router, net["id"])


def test_a_rejected_router_change_changes_nothing(store: Store) -> None:
    ext, other = external(store), external(store, cidr="198.51.100.0/24")
    router = store.create_router({"name": "r", **gateway(ext)})
    revision = store.revision()
    rejected(400, store.update_router, router["id"], {"name": "x", **gateway(other),
                                                       "routes": [{"destination": "0.0.0.0/0", "nexthop": "10.9.9.9"}]})
    rejected(404, store.update_router, router["id"], {"name": "x", **gateway({"id": "nope"})})
    assert store.get_router(router["id"]) == router
    assert store.changes_since(revision) == (revision, set())
    assert store.create_router(gateway(other))["external_gateway"]["ip_address"] == "198.51.100.2"  # not taken


# -- floating IPs --------------------------------------------------------------------------------


@pytest.fixture
def routed(store: Store) -> dict[str, dict]:
    """An external network, a tenant network with a port, and a router joining them."""
    ext, net = external(store), internal(store)
    port = store.create_port(port_body(net["id"], 1))
    router = store.create_router(gateway(ext))
    store.add_router_interface(router["id"], {"network_id": net["id"]})
    return {"external": ext, "network": net, "port": port, "router": router}


def floating(network: dict, **fields: object) -> dict:
    return {"network_id": network["id"], **fields}


def test_floating_ip_lifecycle(store: Store, routed: dict[str, dict]) -> None:
    ext, port, router = routed["external"], routed["port"], routed["router"]
    unmapped = store.create_floating_ip(floating(ext))
    assert unmapped == {"id": unmapped["id"], "network_id": ext["id"], "floating_ip_address": "203.0.113.3",
                        "port_id": None, "load_balancer_id": None, "fixed_ip_address": None,
                        "router_id": None}  # .2: the router's gateway
    mapped = store.update_floating_ip(unmapped["id"], {"port_id": port["id"]})
    assert mapped == {**unmapped, "port_id": port["id"], "fixed_ip_address": "10.0.0.11", "router_id": router["id"]}
    assert store.get_floating_ip(unmapped["id"]) == mapped and store.list_floating_ips() == [mapped]
    assert store.update_floating_ip(unmapped["id"], {"port_id": None}) == unmapped
    store.delete_floating_ip(unmapped["id"])
    assert store.list_floating_ips() == [] and rejected(404, store.get_floating_ip, unmapped["id"])
    assert "floating IP" in rejected(404, store.delete_floating_ip, unmapped["id"]).message


def test_the_model_of_a_floating_ip_and_its_journal(store: Store, routed: dict[str, dict]) -> None:
    revision = store.revision()
    made = store.create_floating_ip(floating(routed["external"], floating_ip_address="203.0.113.77",
                                             port_id=routed["port"]["id"]))
    assert store.snapshot().floating_ips == (FloatingIP(made["id"], routed["external"]["id"], "203.0.113.77",
                                                        routed["port"]["id"]),)
    store.update_floating_ip(made["id"], {"port_id": None})
    assert store.changes_since(revision)[1] == {("floating_ip", made["id"])}
    assert store.objects({("floating_ip", made["id"])})[("floating_ip", made["id"])].port_id is None
    store.delete_floating_ip(made["id"])
    assert store.objects({("floating_ip", made["id"])}) == {("floating_ip", made["id"]): None}


def test_floating_ip_addresses_collide_with_nothing(store: Store, routed: dict[str, dict]) -> None:
    ext = routed["external"]
    store.create_port(port_body(ext["id"], 2, ip_address="203.0.113.3"))
    taken = store.create_floating_ip(floating(ext))
    assert taken["floating_ip_address"] == "203.0.113.4"  # .1 gateway, .2 router, .3 port
    for address, holder in (("203.0.113.1", "gateway"), ("203.0.113.2", "router"), ("203.0.113.3", "port"),
                            ("203.0.113.4", "floating IP")):
        error = rejected(409, store.create_floating_ip, floating(ext, floating_ip_address=address))
        assert fields_of(error) == ["floating_ip_address"] and holder in error.message
    for address in ("198.51.100.7", "203.0.113.0", "203.0.113.255"):
        error = rejected(400, store.create_floating_ip, floating(ext, floating_ip_address=address))
        assert fields_of(error) == ["floating_ip_address"]
    # ... and the other way round: neither a port nor a router gateway takes a floating IP's address.
    assert fields_of(rejected(409, store.create_port, port_body(ext["id"], 3, ip_address="203.0.113.4"))) == \
        ["ip_address"]
    error = rejected(409, store.create_router, gateway(ext, ip_address="203.0.113.4"))
    assert fields_of(error) == ["external_gateway.ip_address"] and taken["id"] in error.message
    small = store.create_network({"cidr": "198.51.100.0/30", "external": True})
    store.create_floating_ip(floating(small))
    assert fields_of(rejected(409, store.create_floating_ip, floating(small))) == ["floating_ip_address"]


@pytest.mark.parametrize(("body", "code", "field"), [
    ({}, 400, "network_id"),
    ({"network_id": "EXT", "floating_ip_address": "x"}, 400, "floating_ip_address"),
    ({"network_id": "EXT", "port_id": 5}, 400, "port_id"),
    ({"network_id": "EXT", "fixed_ip_address": "10.0.0.11"}, 400, "fixed_ip_address"),
    ({"network_id": "INTERNAL"}, 400, "network_id"),  # not external
    ({"network_id": "nope"}, 404, "network_id"),
    ({"network_id": "EXT", "port_id": "nope"}, 404, "port_id"),
])
def test_an_invalid_floating_ip_is_refused_naming_the_field(store: Store, routed: dict[str, dict], body: dict,
                                                            code: int, field: str) -> None:
    ids = {"EXT": routed["external"]["id"], "INTERNAL": routed["network"]["id"]}
    body = {key: ids.get(value, value) if isinstance(value, str) else value for key, value in body.items()}
    assert fields_of(rejected(code, store.create_floating_ip, body)) == [field]
    assert store.list_floating_ips() == []


def test_a_floating_ip_maps_to_a_port_a_router_joins_to_its_network(store: Store, routed: dict[str, dict]) -> None:
    ext, net, port = routed["external"], routed["network"], routed["port"]
    first = store.create_floating_ip(floating(ext, port_id=port["id"]))
    error = rejected(409, store.create_floating_ip, floating(ext, port_id=port["id"]))  # one per port
    assert fields_of(error) == ["port_id"] and first["id"] in error.message
    other_ext = external(store, cidr="198.51.100.0/24")
    assert fields_of(rejected(409, store.create_floating_ip, floating(other_ext, port_id=port["id"]))) == ["port_id"]
    unrouted = internal(store, "10.7.0.0/24")
    alone = store.create_port(port_body(unrouted["id"], 2, ip_address="10.7.0.12"))
    error = rejected(409, store.create_floating_ip, floating(ext, port_id=alone["id"]))  # no router
    assert fields_of(error) == ["port_id"] and "no router" in error.message
    no_gateway = store.create_router({})
    store.add_router_interface(no_gateway["id"], {"network_id": unrouted["id"]})
    assert fields_of(rejected(409, store.create_floating_ip, floating(ext, port_id=alone["id"]))) == ["port_id"]
    on_ext = store.create_port(port_body(ext["id"], 3, ip_address="203.0.113.30"))
    error = rejected(409, store.create_floating_ip, floating(ext, port_id=on_ext["id"]))
    assert fields_of(error) == ["port_id"] and "external" in error.message
    # PATCH moves it, or refuses the same way; network and address never change.
    second_port = store.create_port(port_body(net["id"], 4))
    moved = store.update_floating_ip(first["id"], {"port_id": second_port["id"]})
    assert (moved["port_id"], moved["fixed_ip_address"]) == (second_port["id"], "10.0.0.14")
    assert store.update_floating_ip(first["id"], {"port_id": second_port["id"]}) == moved  # its own port: fine
    assert fields_of(rejected(409, store.update_floating_ip, first["id"], {"port_id": alone["id"]})) == ["port_id"]
    assert fields_of(rejected(404, store.update_floating_ip, first["id"], {"port_id": "nope"})) == ["port_id"]
    for body in ({"network_id": other_ext["id"]}, {"floating_ip_address": "203.0.113.99"}):
        assert fields_of(rejected(400, store.update_floating_ip, first["id"], body)) == list(body)
    assert store.get_floating_ip(first["id"]) == moved
    assert store.list_floating_ips(port_id=second_port["id"]) == [moved]
    assert store.list_floating_ips(network_id=other_ext["id"]) == [] and store.list_floating_ips(port_id="x") == []


def test_a_deleted_port_leaves_its_floating_ip_unmapped(store: Store, routed: dict[str, dict]) -> None:
    made = store.create_floating_ip(floating(routed["external"], port_id=routed["port"]["id"]))
    revision = store.revision()
    store.delete_port(routed["port"]["id"])
    assert store.get_floating_ip(made["id"]) == {**made, "port_id": None, "fixed_ip_address": None, "router_id": None}
    assert store.changes_since(revision)[1] == {("port", routed["port"]["id"]), ("floating_ip", made["id"])}


def test_what_a_floating_ip_maps_through_stays(store: Store, routed: dict[str, dict]) -> None:
    ext, net, router = routed["external"], routed["network"], routed["router"]["id"]
    made = store.create_floating_ip(floating(ext, port_id=routed["port"]["id"]))
    error = rejected(409, store.remove_router_interface, router, net["id"])
    assert fields_of(error) == ["network_id"] and made["id"] in error.message
    for body in ({"external_gateway": None}, gateway(external(store, cidr="198.51.100.0/24"))):
        error = rejected(409, store.update_router, router, body)
        assert fields_of(error) == ["external_gateway"] and made["id"] in error.message
    assert store.update_router(router, gateway(ext, enable_snat=False))["external_gateway"]["enable_snat"] is False
    error = rejected(409, store.delete_router, router)
    assert error.details == [{"field": "id", "message": f"used by its interface on network {net['id']}"},
                             {"field": "id", "message": f"used by floating IP {made['id']}"}]
    error = rejected(409, store.delete_network, ext["id"])
    assert {"field": "id", "message": f"used by floating IP {made['id']}"} in error.details
    assert fields_of(rejected(409, store.update_network, ext["id"], {"external": False})) == ["external"]
    unmapped = store.create_floating_ip(floating(external(store, cidr="192.0.2.0/24")))
    error = rejected(409, store.update_network, unmapped["network_id"], {"external": False})
    assert unmapped["id"] in error.message
    store.update_floating_ip(made["id"], {"port_id": None})  # unmapped, it no longer holds the router back
    store.remove_router_interface(router, net["id"])
    store.update_router(router, {"external_gateway": None})
    store.delete_router(router)
