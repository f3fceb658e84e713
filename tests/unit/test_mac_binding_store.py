"""MAC bindings in the store: journaled when new or changed (not when only confirmed), kept across restarts, gone
with their network, and handed to the compiler through the journal like every other kind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from apps.model import MacBinding
from controller.store import Store
from tests.unit.test_store import rejected

GATEWAY = "203.0.113.1"
MAC = "02:00:00:00:00:01"


def external(store: Store, cidr: str = "203.0.113.0/24") -> str:
    return store.create_network({"name": "ext", "cidr": cidr, "external": True})["id"]


def test_a_new_binding_is_journaled_a_confirmation_is_not_a_new_mac_is(store: Store) -> None:
    ext = external(store)
    start = store.revision()
    assert store.put_mac_binding(ext, GATEWAY, MAC, at=1000.0)
    assert store.changes_since(start) == (start + 1, {("mac_binding", f"{ext}/{GATEWAY}")})
    assert store.mac_bindings() == [(MacBinding(ext, GATEWAY, MAC), 1000.0)]
    assert not store.put_mac_binding(ext, GATEWAY, MAC, at=1060.5)
    assert store.revision() == start + 1  # a confirmation changes no flow
    assert store.mac_bindings([ext]) == [(MacBinding(ext, GATEWAY, MAC), 1060.5)]
    assert store.put_mac_binding(ext, GATEWAY, "02:00:00:00:00:02", at=1070.0)
    assert store.revision() == start + 2
    assert store.objects({("mac_binding", f"{ext}/{GATEWAY}"), ("mac_binding", f"{ext}/203.0.113.9")}) == {
        ("mac_binding", f"{ext}/{GATEWAY}"): MacBinding(ext, GATEWAY, "02:00:00:00:00:02"),
        ("mac_binding", f"{ext}/203.0.113.9"): None}
    assert store.snapshot().mac_bindings == (MacBinding(ext, GATEWAY, "02:00:00:00:00:02"),)


def test_a_binding_outside_the_cidr_is_refused_and_one_for_a_gone_network_is_not_written(store: Store) -> None:
    ext = external(store)
    start = store.revision()
    assert "ip_address" in str(rejected(400, store.put_mac_binding, ext, "198.51.100.1", MAC, 1.0).details)
    assert not store.put_mac_binding("no-such-network", GATEWAY, MAC, at=1.0)
    assert store.mac_bindings() == [] and store.revision() == start


def test_deleting_only_if_unconfirmed_since_keeps_a_fresh_answer(store: Store) -> None:
    ext = external(store)
    store.put_mac_binding(ext, GATEWAY, MAC, at=1000.0)
    start = store.revision()
    assert not store.delete_mac_binding(ext, GATEWAY, unconfirmed_since=999.0)  # confirmed after that
    assert store.revision() == start
    assert store.delete_mac_binding(ext, GATEWAY, unconfirmed_since=1000.0)
    assert store.changes_since(start) == (start + 1, {("mac_binding", f"{ext}/{GATEWAY}")})
    assert not store.delete_mac_binding(ext, GATEWAY) and store.mac_bindings() == []


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sdn.db"
    first = Store(url)
    ext = external(first)
    first.put_mac_binding(ext, GATEWAY, MAC, at=1234.25)
    first.close()
    again = Store(url)
    assert again.mac_bindings() == [(MacBinding(ext, GATEWAY, MAC), 1234.25)]
    assert again.snapshot().mac_bindings == (MacBinding(ext, GATEWAY, MAC),)


def test_a_networks_bindings_go_with_it_journaled(store: Store) -> None:
    ext, other = external(store), external(store, "198.51.100.0/24")
    store.put_mac_binding(ext, GATEWAY, MAC, at=1.0)
    store.put_mac_binding(ext, "203.0.113.7", MAC, at=1.0)
    store.put_mac_binding(other, "198.51.100.7", MAC, at=1.0)
    start = store.revision()
    store.delete_network(ext)
    assert store.changes_since(start)[1] == {("network", ext), ("mac_binding", f"{ext}/{GATEWAY}"),
                                             ("mac_binding", f"{ext}/203.0.113.7")}
    assert [binding for binding, _ in store.mac_bindings()] == [MacBinding(other, "198.51.100.7", MAC)]


def test_the_database_cascades_too(store: Store, tmp_path: Path) -> None:
    """A network row deleted behind the store's back (another tool, an older controller) takes its bindings."""
    ext = external(store)
    store.put_mac_binding(ext, GATEWAY, MAC, at=1.0)
    store.close()
    with sqlite3.connect(tmp_path / "sdn.db") as db:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("DELETE FROM networks WHERE id = ?", (ext,))
        assert db.execute("SELECT count(*) FROM mac_bindings").fetchone() == (0,)


def test_a_new_cidr_drops_the_bindings_outside_it(store: Store) -> None:
    ext = external(store)
    store.put_mac_binding(ext, "203.0.113.1", MAC, at=1.0)
    store.put_mac_binding(ext, "203.0.113.200", MAC, at=1.0)
    start = store.revision()
    store.update_network(ext, {"cidr": "203.0.113.0/25"})
    assert store.changes_since(start)[1] == {("network", ext), ("mac_binding", f"{ext}/203.0.113.200")}
    assert [binding.ip_address for binding, _ in store.mac_bindings()] == ["203.0.113.1"]
