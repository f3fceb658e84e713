"""Routers, floating IPs and uplinks in the store: the zone allocator they share with ports, every validation
rule, allocation of addresses, and what they journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller.store import Store
from tests.unit.test_store import port_body


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
