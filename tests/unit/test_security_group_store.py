"""Security groups in the store: the default group, rule validation, ports' groups, keys, snapshot, migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from apps.model import SecurityGroup, SecurityGroupRule
from controller import store as store_module
from controller.errors import ApiError
from controller.store import Store
from tests.unit.test_store import DPID, default_group, fields_of, port_body, rejected

ANY_EGRESS = {"direction": "egress", "ethertype": "IPv4", "protocol": None, "port_range_min": None,
              "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/sdn.db")


@pytest.fixture
def network(store: Store) -> dict:
    return store.create_network({"cidr": "10.0.0.0/24"})


def rule(group_id: str, **fields: object) -> dict:
    return {"security_group_id": group_id, "direction": "ingress", **fields}


def without_ids(rules: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("id", "security_group_id")} for r in rules]


# -- groups ------------------------------------------------------------------------------------


def test_default_group_exists_with_neutron_rules_and_keeps_its_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sdn.db"
    first = Store(url)
    group = default_group(first)
    assert [g["id"] for g in first.list_security_groups()] == [group["id"]]
    assert without_ids(group["rules"]) == [ANY_EGRESS, {**ANY_EGRESS, "direction": "ingress",
                                                        "remote_group_id": group["id"]}]
    first.close()
    again = Store(url)
    assert again.list_security_groups() == [group]


def test_new_group_holds_one_egress_rule(store: Store) -> None:
    group = store.create_security_group({"name": "web", "description": "front ends"})
    assert group == {"id": group["id"], "name": "web", "description": "front ends", "rules": group["rules"]}
    (only,) = group["rules"]
    assert only == {"id": only["id"], "security_group_id": group["id"], **ANY_EGRESS}
    assert store.get_security_group(group["id"]) == group
    assert store.list_security_group_rules(security_group_id=group["id"]) == [only]
    assert store.get_security_group_rule(only["id"]) == only
    assert store.create_security_group({})["name"] == ""


def test_update_group(store: Store) -> None:
    group = store.create_security_group({"name": "a"})
    changed = store.update_security_group(group["id"], {"name": "b", "description": "d"})
    assert changed == {**group, "name": "b", "description": "d"}
    assert store.get_security_group(group["id"]) == changed


def test_default_group_cannot_be_deleted_or_renamed_but_its_rules_can_change(store: Store) -> None:
    default = default_group(store)
    assert fields_of(rejected(409, store.delete_security_group, default["id"])) == ["id"]
    assert fields_of(rejected(409, store.update_security_group, default["id"], {"name": "other"})) == ["name"]
    assert store.update_security_group(default["id"], {"description": "mine"})["description"] == "mine"
    for existing in default["rules"]:
        store.delete_security_group_rule(existing["id"])
    added = store.create_security_group_rule(rule(default["id"], protocol="icmp"))
    assert default_group(store)["rules"] == [added]


def test_the_default_name_is_reserved(store: Store) -> None:
    assert fields_of(rejected(400, store.create_security_group, {"name": "default"})) == ["name"]
    group = store.create_security_group({"name": "x"})
    assert fields_of(rejected(400, store.update_security_group, group["id"], {"name": "default"})) == ["name"]
    assert [g["name"] for g in store.list_security_groups()] == ["default", "x"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"description": None}, "description"),
        ({"rules": []}, "rules"),
    ],
)
def test_invalid_group_is_400(store: Store, body: dict, field: str) -> None:
    assert fields_of(rejected(400, store.create_security_group, body)) == [field]
    assert len(store.list_security_groups()) == 1


def test_group_in_use_cannot_be_deleted(store: Store, network: dict) -> None:
    used = store.create_security_group({"name": "used"})
    port = store.create_port(port_body(network["id"], 1, security_group_ids=[used["id"]]))
    error = rejected(409, store.delete_security_group, used["id"])
    assert error.details == [{"field": "id", "message": f"used by port {port['id']}"}]

    remote = store.create_security_group({"name": "remote"})
    other = store.create_security_group({"name": "other"})
    referring = store.create_security_group_rule(rule(other["id"], remote_group_id=remote["id"]))
    error = rejected(409, store.delete_security_group, remote["id"])
    assert error.details == [
        {"field": "id", "message": f"used by rule {referring['id']} of security group {other['id']}"}
    ]
    assert store.get_security_group(remote["id"]) == remote

    store.delete_port(port["id"])  # its memberships go with it
    store.delete_security_group(used["id"])
    store.delete_security_group_rule(referring["id"])
    store.delete_security_group(remote["id"])
    assert [g["name"] for g in store.list_security_groups()] == ["default", "other"]


def test_deleting_a_group_deletes_its_rules_including_self_references(store: Store) -> None:
    group = store.create_security_group({"name": "self"})
    store.create_security_group_rule(rule(group["id"], remote_group_id=group["id"]))
    store.delete_security_group(group["id"])
    rejected(404, store.get_security_group, group["id"])
    assert store.list_security_group_rules(security_group_id=group["id"]) == []
    assert len(store.list_security_group_rules()) == 2  # the default group's


def test_unknown_group_and_rule_ids_are_404(store: Store) -> None:
    for call, args in [
        (store.get_security_group, ("nope",)),
        (store.update_security_group, ("nope", {"name": "x"})),
        (store.delete_security_group, ("nope",)),
        (store.get_security_group_rule, ("nope",)),
        (store.delete_security_group_rule, ("nope",)),
    ]:
        rejected(404, call, *args)
    assert store.list_security_group_rules(security_group_id="nope") == []


# -- rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"direction": "in"}, "direction"),
        ({"direction": None}, "direction"),
        ({"protocol": "gre"}, "protocol"),
        ({"protocol": 6}, "protocol"),
        ({"port_range_min": 22}, "port_range_min"),  # no protocol
        ({"protocol": "icmp", "port_range_max": 8}, "port_range_max"),
        ({"protocol": "tcp", "port_range_min": 0}, "port_range_min"),
        ({"protocol": "tcp", "port_range_max": 65536}, "port_range_max"),
        ({"protocol": "tcp", "port_range_min": "80"}, "port_range_min"),
        ({"protocol": "udp", "port_range_min": 90, "port_range_max": 80}, "port_range_min"),
        ({"remote_ip_prefix": "10.0.0.0/33"}, "remote_ip_prefix"),
        ({"remote_ip_prefix": "fd00::/64"}, "remote_ip_prefix"),
        ({"remote_ip_prefix": "anywhere"}, "remote_ip_prefix"),
        ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "GROUP"}, "remote_group_id"),
        ({"ethertype": "IPv6"}, "ethertype"),
        ({"description": "x"}, "description"),
        ({"id": "mine"}, "id"),
    ],
)
def test_invalid_rule_is_400_naming_the_field(store: Store, fields: dict, field: str) -> None:
    group = store.create_security_group({"name": "g"})
    fields = {k: group["id"] if v == "GROUP" else v for k, v in fields.items()}
    before = store.list_security_group_rules()
    error = rejected(400, store.create_security_group_rule, rule(group["id"], **fields))
    assert fields_of(error) == [field]
    assert error.message.startswith(field)
    assert store.list_security_group_rules() == before


def test_rule_requires_group_and_direction(store: Store) -> None:
    error = rejected(400, store.create_security_group_rule, {})
    assert sorted(fields_of(error)) == ["direction", "security_group_id"]


def test_rule_normalization(store: Store) -> None:
    group_id = store.create_security_group({"name": "g"})["id"]

    def created(**fields: object) -> dict:
        made = store.create_security_group_rule(rule(group_id, **fields))
        return {k: made[k] for k in fields if k != "ethertype"} | {"ports": (made["port_range_min"],
                                                                              made["port_range_max"])}

    assert created(protocol="TCP", port_range_min=22) == {"protocol": "tcp", "port_range_min": 22, "ports": (22, 22)}
    assert created(protocol="udp", port_range_max=53)["ports"] == (53, 53)
    assert created(protocol="tcp", port_range_min=1000, port_range_max=2000)["ports"] == (1000, 2000)
    assert created(remote_ip_prefix="10.1.2.3/16")["remote_ip_prefix"] == "10.1.0.0/16"
    assert created(remote_ip_prefix="192.168.1.5", ethertype="IPv4")["remote_ip_prefix"] == "192.168.1.5/32"
    assert created(protocol="icmp", remote_group_id=group_id)["remote_group_id"] == group_id
    assert created(direction="egress", protocol=None, remote_ip_prefix="0.0.0.0/0")["ports"] == (None, None)


def test_rule_references_must_exist(store: Store) -> None:
    group_id = store.create_security_group({"name": "g"})["id"]
    before = store.list_security_group_rules()
    assert fields_of(rejected(404, store.create_security_group_rule, rule("nope"))) == ["security_group_id"]
    error = rejected(404, store.create_security_group_rule, rule(group_id, remote_group_id="nope"))
    assert fields_of(error) == ["remote_group_id"]
    assert store.list_security_group_rules() == before


def test_duplicate_rule_is_409(store: Store) -> None:
    group_id = store.create_security_group({"name": "g"})["id"]
    ssh = rule(group_id, protocol="tcp", port_range_min=22)
    first = store.create_security_group_rule(ssh)
    error = rejected(409, store.create_security_group_rule, {**ssh, "protocol": "TCP", "port_range_max": 22})
    assert first["id"] in error.message
    rejected(409, store.create_security_group_rule, rule(group_id, direction="egress"))  # the initial rule
    # One field apart, or in another group: not a duplicate.
    store.create_security_group_rule({**ssh, "port_range_max": 23})
    store.create_security_group_rule({**ssh, "remote_ip_prefix": "10.0.0.0/8"})
    store.create_security_group_rule({**ssh, "security_group_id": default_group(store)["id"]})
    assert len(store.list_security_group_rules(security_group_id=group_id)) == 4


def test_rule_keys_are_unique_and_not_soon_reused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "RULE_KEYS", range(1, 6))
    keys = lambda: [r.key for g in store.snapshot().security_groups for r in g.rules]  # noqa: E731
    group_id = store.create_security_group({"name": "g"})["id"]  # default holds 1, 2; the new group 3
    newest = store.create_security_group_rule(rule(group_id))
    assert keys() == [1, 2, 3, 4]
    store.delete_security_group_rule(newest["id"])
    store.create_security_group_rule(rule(group_id, protocol="icmp"))
    assert keys() == [1, 2, 3, 5]  # 4 is not handed out again right away
    store.delete_security_group_rule(default_group(store)["rules"][0]["id"])  # key 1
    store.create_security_group_rule(rule(group_id, protocol="tcp"))
    assert sorted(keys()) == [1, 2, 3, 5]  # past the end: wrapped around to the lowest free
    store.create_security_group_rule(rule(group_id, protocol="tcp", port_range_min=1))
    assert sorted(keys()) == [1, 2, 3, 4, 5]
    error = rejected(409, store.create_security_group_rule, rule(group_id, protocol="udp"))
    assert fields_of(error) == ["key"]
    assert len(keys()) == 5


# -- ports -------------------------------------------------------------------------------------


def test_port_groups_default_order_and_duplicates(store: Store, network: dict) -> None:
    default_id = default_group(store)["id"]
    a, b = (store.create_security_group({"name": n})["id"] for n in "ab")
    assert store.create_port(port_body(network["id"], 1))["security_group_ids"] == [default_id]
    port = store.create_port(port_body(network["id"], 2, security_group_ids=[b, a, b]))
    assert port["security_group_ids"] == [b, a]
    assert store.get_port(port["id"])["security_group_ids"] == [b, a]
    assert store.create_port(port_body(network["id"], 3, security_group_ids=[]))["security_group_ids"] == []
    unsecured = store.create_port(port_body(network["id"], 4, port_security_enabled=False))
    assert unsecured["security_group_ids"] == []
    assert store.update_port(port["id"], {"security_group_ids": [a]})["security_group_ids"] == [a]
    assert store.update_port(port["id"], {"name": "kept"})["security_group_ids"] == [a]
    assert [p["security_group_ids"] for p in store.list_ports()] == [[default_id], [a], [], []]


@pytest.mark.parametrize(
    ("value", "field"),
    [(["x", 1], "security_group_ids"), ("abc", "security_group_ids"), (None, "security_group_ids")],
)
def test_invalid_port_groups_are_400(store: Store, network: dict, value: object, field: str) -> None:
    error = rejected(400, store.create_port, port_body(network["id"], security_group_ids=value))
    assert fields_of(error) == [field]


def test_unknown_port_group_is_404_and_changes_nothing(store: Store, network: dict) -> None:
    error = rejected(404, store.create_port, port_body(network["id"], security_group_ids=["nope"]))
    assert fields_of(error) == ["security_group_ids"]
    assert store.list_ports() == []
    port = store.create_port(port_body(network["id"]))
    error = rejected(404, store.update_port, port["id"], {"name": "x", "security_group_ids": ["nope"]})
    assert fields_of(error) == ["security_group_ids"]
    assert store.get_port(port["id"]) == port


def test_groups_need_port_security(store: Store, network: dict) -> None:
    default_id = default_group(store)["id"]
    body = port_body(network["id"], port_security_enabled=False, security_group_ids=[default_id])
    assert fields_of(rejected(409, store.create_port, body)) == ["security_group_ids"]
    assert store.list_ports() == []

    port = store.create_port(port_body(network["id"]))
    error = rejected(409, store.update_port, port["id"], {"name": "x", "port_security_enabled": False})
    assert fields_of(error) == ["port_security_enabled"]
    assert store.get_port(port["id"]) == port
    off = store.update_port(port["id"], {"port_security_enabled": False, "security_group_ids": []})
    assert (off["port_security_enabled"], off["security_group_ids"]) == (False, [])
    error = rejected(409, store.update_port, port["id"], {"security_group_ids": [default_id]})
    assert fields_of(error) == ["security_group_ids"]
    assert store.get_port(port["id"]) == off
    on = store.update_port(port["id"], {"port_security_enabled": True, "security_group_ids": [default_id]})
    assert on == port


def test_port_keys_never_change_and_a_freed_one_is_not_soon_reused(
    store: Store, network: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key is a conntrack zone: a new port must not inherit a deleted port's connections."""
    ids = [store.create_port(port_body(network["id"], n))["id"] for n in (1, 2, 3)]
    keys = lambda: {p.id: p.key for p in store.snapshot().ports}  # noqa: E731
    assert list(keys().values()) == [1, 2, 3]
    store.delete_port(ids[0])
    assert store.freed_zones() == {1}
    store.update_port(ids[1], {"binding": {"dpid": DPID, "interface": "moved"}, "ip_address": "10.0.0.99"})
    fourth = store.create_port(port_body(network["id"], 4))["id"]
    assert keys() == {ids[1]: 2, ids[2]: 3, fourth: 4}
    # Only once the range has gone round is key 1 handed out again (and then no longer freed).
    monkeypatch.setattr("controller.store.ZONES", range(1, 5))
    fifth = store.create_port(port_body(network["id"], 5))["id"]
    assert keys()[fifth] == 1 and store.freed_zones() == frozenset()
    with pytest.raises(ApiError) as full:
        store.create_port(port_body(network["id"], 6))
    assert full.value.code == 409


# -- snapshot and migration --------------------------------------------------------------------


def test_snapshot_carries_groups_rules_and_port_groups(store: Store, network: dict) -> None:
    default = default_group(store)
    web = store.create_security_group({"name": "web"})
    http = store.create_security_group_rule(
        rule(web["id"], protocol="tcp", port_range_min=80, remote_ip_prefix="10.0.0.0/8")
    )
    port = store.create_port(port_body(network["id"], security_group_ids=[web["id"], default["id"]]))
    policy = store.snapshot()
    egress, ingress = default["rules"]
    assert policy.security_groups == (
        SecurityGroup(default["id"], "default", (
            SecurityGroupRule(egress["id"], default["id"], "egress", key=1),
            SecurityGroupRule(ingress["id"], default["id"], "ingress", remote_group_id=default["id"], key=2),
        )),
        SecurityGroup(web["id"], "web", (
            SecurityGroupRule(web["rules"][0]["id"], web["id"], "egress", key=3),
            SecurityGroupRule(http["id"], web["id"], "ingress", "tcp", 80, 80, "10.0.0.0/8", key=4),
        )),
    )
    (snapped,) = policy.ports
    assert (snapped.id, snapped.security_group_ids, snapped.key) == (port["id"], (web["id"], default["id"]), 1)


def test_database_from_before_security_groups_is_upgraded(tmp_path: Path) -> None:
    """Ports get keys; the default group appears and takes in the ports that have port security."""
    url, path = f"sqlite:///{tmp_path}/sdn.db", tmp_path / "sdn.db"
    old = Store(url)
    net = old.create_network({"cidr": "10.0.0.0/24"})
    secured = [old.create_port(port_body(net["id"], n))["id"] for n in (1, 2)]
    unsecured = old.create_port(port_body(net["id"], 3, port_security_enabled=False))["id"]
    old.close()
    with sqlite3.connect(path) as db:  # what the previous release's schema lacked
        db.executescript(
            """DROP TABLE port_security_groups; DROP TABLE security_group_rules; DROP TABLE security_groups;
            DROP TABLE counters; DROP INDEX ix_ports_key; ALTER TABLE ports DROP COLUMN "key"; DROP TABLE zones;"""
        )
    upgraded = Store(url)
    default_id = default_group(upgraded)["id"]
    assert [(p.id, p.key, p.security_group_ids) for p in upgraded.snapshot().ports] == [
        (secured[0], 1, (default_id,)), (secured[1], 2, (default_id,)), (unsecured, 3, ()),
    ]
    assert upgraded.create_port(port_body(net["id"], 4))["id"] in {p.id for p in upgraded.snapshot().ports}
    assert [p.key for p in upgraded.snapshot().ports] == [1, 2, 3, 4]
    upgraded.close()
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute('UPDATE ports SET "key" = 9')  # the unique index is back


# -- replacing a group's rules at once ------------------------------------------------------------------


def test_replacing_rules_keeps_equal_ones_removes_and_adds_the_rest(store: Store) -> None:
    group = store.create_security_group({"name": "g"})
    egress = group["rules"][0]
    ssh = store.create_security_group_rule(rule(group["id"], protocol="tcp", port_range_min=22))
    revision = store.revision()
    replaced = store.replace_security_group_rules(group["id"], {"rules": [
        {"direction": "egress"},  # equal to the initial rule: kept as it is
        {"direction": "ingress", "protocol": "udp", "port_range_min": 53, "remote_ip_prefix": "10.0.0.9/8"},
    ]})
    assert [r["id"] for r in replaced["rules"]][0] == egress["id"]
    assert ssh["id"] not in {r["id"] for r in replaced["rules"]}
    (dns,) = replaced["rules"][1:]
    assert (dns["protocol"], dns["port_range_max"], dns["remote_ip_prefix"]) == ("udp", 53, "10.0.0.0/8")
    assert store.get_security_group(group["id"]) == replaced
    assert store.changes_since(revision)[1] == {("rule", ssh["id"]), ("rule", dns["id"])}  # not the kept rule
    keys = {r.id: r.key for g in store.snapshot().security_groups for r in g.rules}
    assert keys[egress["id"]] < keys[dns["id"]]  # the kept rule kept its key (its conjunction id)
    assert store.replace_security_group_rules(group["id"], {"rules": []})["rules"] == []


@pytest.mark.parametrize(("rules", "code", "field"), [
    ([{"direction": "up"}], 400, "rules[0].direction"),
    ([{"direction": "egress"}, {"direction": "egress"}], 400, "rules[1]"),
    ([{"direction": "ingress", "port_range_min": 5}], 400, "rules[0].port_range_min"),
    ([{"direction": "ingress", "remote_group_id": "nope"}], 404, "rules[0].remote_group_id"),
    ([{"direction": "ingress", "security_group_id": "x"}], 400, "rules[0].security_group_id"),
    ("not a list", 400, "rules"),
])
def test_a_bad_replacement_changes_nothing(store: Store, rules: object, code: int, field: str) -> None:
    group = store.create_security_group({"name": "g"})
    error = rejected(code, store.replace_security_group_rules, group["id"], {"rules": rules})
    assert fields_of(error) == [field]
    assert store.get_security_group(group["id"]) == group


# -- profiles: numbers for the sets of groups ports have -----------------------------------------------------


def test_ports_with_the_same_groups_share_a_profile(store: Store, network: dict) -> None:
    default_id = default_group(store)["id"]
    web = store.create_security_group({"name": "web"})["id"]
    a, b = (store.create_port(port_body(network["id"], n))["id"] for n in (1, 2))
    c = store.create_port(port_body(network["id"], 3, security_group_ids=[web, default_id]))["id"]
    d = store.create_port(port_body(network["id"], 4, security_group_ids=[default_id, web]))["id"]  # order aside
    off = store.create_port(port_body(network["id"], 5, port_security_enabled=False))["id"]
    profiles = lambda: {p.id: p.profile for p in store.snapshot().ports}  # noqa: E731
    first = profiles()
    assert first[a] == first[b] != first[c] == first[d] and first[off] == 0 and 0 not in (first[a], first[c])
    store.update_port(b, {"security_group_ids": [web, default_id]})
    store.update_port(c, {"port_security_enabled": False, "security_group_ids": []})
    assert profiles() == {**first, b: first[c], c: 0}


def test_a_database_from_before_profiles_gets_them(tmp_path: Path) -> None:
    url, path = f"sqlite:///{tmp_path}/sdn.db", tmp_path / "sdn.db"
    old = Store(url)
    net = old.create_network({"cidr": "10.0.0.0/24"})
    web = old.create_security_group({"name": "web"})["id"]
    ids = [old.create_port(port_body(net["id"], n, **fields))["id"] for n, fields in
           ((1, {}), (2, {}), (3, {"security_group_ids": [web]}), (4, {"port_security_enabled": False}))]
    old.close()
    with sqlite3.connect(path) as db:
        db.executescript("DROP TABLE profiles; ALTER TABLE ports DROP COLUMN profile;")
    profiles = {p.id: p.profile for p in Store(url).snapshot().ports}
    assert profiles[ids[0]] == profiles[ids[1]] != profiles[ids[2]] and profiles[ids[3]] == 0
    assert 0 not in (profiles[ids[0]], profiles[ids[2]])
