"""Ports without a binding (attached where a hypervisor's OVSDB says): stored, shown, validated, migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask.testing import FlaskClient

from apps.attachments import Attachment
from controller.store import Store
from tests.unit.api_helpers import DPID, StubRuntime, make_network
from tests.unit.test_store import port_body


def test_ports_without_a_binding_are_stored_and_snapshotted_unbound(store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    first = store.create_port(port_body(net["id"], 1, binding=None))
    second = store.create_port({k: v for k, v in port_body(net["id"], 2).items() if k != "binding"})
    assert first["binding"] is None and second["binding"] is None  # two unbound ports never clash
    assert {(p.dpid, p.interface) for p in store.snapshot().ports} == {(None, None)}
    bound = store.update_port(first["id"], {"binding": {"dpid": DPID, "interface": "vm1"}})
    assert bound["binding"] == {"dpid": DPID, "interface": "vm1"}
    assert store.update_port(first["id"], {"binding": None})["binding"] is None


def test_a_port_shows_where_ovsdb_attached_it_and_what_it_refused(client: FlaskClient, runtime: StubRuntime) -> None:
    net = make_network(client)
    body = {"network_id": net["id"], "mac_address": "fa:16:3e:00:00:01", "ip_address": "10.0.0.5"}
    port = client.post("/v1/ports", json=body).json
    assert (port["binding"], port["binding_source"], port["status"]) == (None, None, "DOWN")
    runtime.attachments[port["id"]] = Attachment((DPID, "s1-eth1"), "interface vm9 of switch x claims it too")
    shown = client.get(f"/v1/ports/{port['id']}").json
    assert shown["binding"] == {"dpid": DPID, "interface": "s1-eth1"}
    assert (shown["binding_source"], shown["status"]) == ("ovsdb", "ACTIVE")
    assert shown["binding_conflict"] == "interface vm9 of switch x claims it too"
    explicit = client.patch(f"/v1/ports/{port['id']}", json={"binding": {"dpid": DPID, "interface": "s1-eth2"}}).json
    assert (explicit["binding"]["interface"], explicit["binding_source"]) == ("s1-eth2", "api")


def test_a_database_from_before_optional_bindings_is_migrated(tmp_path: Path) -> None:
    url, path = f"sqlite:///{tmp_path}/sdn.db", tmp_path / "sdn.db"
    old = Store(url)
    net = old.create_network({"cidr": "10.0.0.0/24"})
    kept = old.create_port(port_body(net["id"], 1))
    old.close()
    with sqlite3.connect(path) as db:  # the ports table as it was: binding NOT NULL
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'ports'").fetchone()
        old_sql = sql.replace("dpid VARCHAR(16),", "dpid VARCHAR(16) NOT NULL,").replace(
            "interface VARCHAR(15),", "interface VARCHAR(15) NOT NULL,")
        assert old_sql != sql
        db.executescript(f"""PRAGMA foreign_keys=OFF; {old_sql.replace('CREATE TABLE ports', 'CREATE TABLE p0', 1)};
                         INSERT INTO p0 SELECT * FROM ports; DROP TABLE ports; ALTER TABLE p0 RENAME TO ports;""")
    upgraded = Store(url)
    assert upgraded.get_port(kept["id"]) == kept
    assert upgraded.create_port(port_body(net["id"], 2, binding=None))["binding"] is None
    upgraded.delete_port(kept["id"])  # its foreign keys still hold
    upgraded.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
