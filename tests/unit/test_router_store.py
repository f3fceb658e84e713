"""Routers, floating IPs and uplinks in the store: the zone allocator they share with ports, every validation
rule, allocation of addresses, and what they journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller.store import Store
from tests.unit.test_store import DPID, fields_of, port_body, rejected


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/sdn.db")


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
