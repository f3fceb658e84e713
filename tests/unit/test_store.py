"""The policy store: validation, conflicts, atomicity, snapshots and topology persistence."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from apps.model import Network, Policy, Port
from apps.topology import Link, Switch, SwitchPort
from controller.errors import ApiError
from controller.store import Store, StoreError

DPID = "000000000000000a"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/sdn.db")


def port_body(network_id: str, n: int = 1, **overrides: object) -> dict:
    body = {
        "network_id": network_id,
        "mac_address": f"fa:16:3e:00:00:{n:02x}",
        "ip_address": f"10.0.0.{10 + n}",
        "binding": {"dpid": DPID, "interface": f"s1-eth{n}"},
    }
    body.update(overrides)
    return body


def rejected(code: int, call, *args) -> ApiError:  # noqa: ANN001 - any store method
    with pytest.raises(ApiError) as info:
        call(*args)
    assert info.value.code == code, info.value.body()
    return info.value


def fields_of(error: ApiError) -> list[str]:
    return [detail.get("field") for detail in error.details]


def default_group(store: Store) -> dict:
    (group,) = [g for g in store.list_security_groups() if g["name"] == "default"]
    return group


# -- networks ----------------------------------------------------------------------------------


def test_network_defaults(store: Store) -> None:
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    assert net == {
        "id": net["id"],
        "name": "blue",
        "cidr": "10.0.0.0/24",
        "gateway_ip": "10.0.0.1",
        "segmentation_id": 1,
        "external": False,
        "uplink": None,
    }
    assert store.get_network(net["id"]) == net
    assert store.list_networks() == [net]


def test_segmentation_ids_fill_the_lowest_gap_and_overlapping_cidrs_are_allowed(store: Store) -> None:
    ids = [store.create_network({"cidr": "10.0.0.0/24"})["id"] for _ in range(3)]
    assert [n["segmentation_id"] for n in store.list_networks()] == [1, 2, 3]
    store.delete_network(ids[1])
    assert store.create_network({"cidr": "10.0.0.0/16"})["segmentation_id"] == 2
    assert store.create_network({"cidr": "10.0.0.0/24", "segmentation_id": 4094})["segmentation_id"] == 4094


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cidr": "10.0.0.1/24"}, "cidr"),  # host bits set
        ({"cidr": "10.0.0.0"}, "cidr"),
        ({"cidr": "fd00::/64"}, "cidr"),
        ({"cidr": "10.0.0.0/31"}, "cidr"),
        ({"cidr": "10.0.0.0/33"}, "cidr"),
        ({"cidr": 10}, "cidr"),
        ({}, "cidr"),
        ({"cidr": "10.0.0.0/24", "gateway_ip": "10.0.1.1"}, "gateway_ip"),
        ({"cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.0"}, "gateway_ip"),
        ({"cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.255"}, "gateway_ip"),
        ({"cidr": "10.0.0.0/24", "gateway_ip": "nope"}, "gateway_ip"),
        ({"cidr": "10.0.0.0/24", "segmentation_id": 0}, "segmentation_id"),
        ({"cidr": "10.0.0.0/24", "segmentation_id": 4095}, "segmentation_id"),
        ({"cidr": "10.0.0.0/24", "segmentation_id": True}, "segmentation_id"),
        ({"cidr": "10.0.0.0/24", "segmentation_id": "5"}, "segmentation_id"),
        ({"cidr": "10.0.0.0/24", "external": "yes"}, "external"),
        ({"cidr": "10.0.0.0/24", "name": None}, "name"),
        ({"cidr": "10.0.0.0/24", "name": "x" * 256}, "name"),
        ({"cidr": "10.0.0.0/24", "color": "blue"}, "color"),
    ],
)
def test_invalid_network_is_400_naming_the_field(store: Store, body: dict, field: str) -> None:
    error = rejected(400, store.create_network, body)
    assert fields_of(error) == [field]
    assert error.message.startswith(field)
    assert store.list_networks() == []


def test_every_bad_field_is_reported_at_once(store: Store) -> None:
    error = rejected(400, store.create_network, {"cidr": 5, "name": 1, "extra": 1})
    assert sorted(fields_of(error)) == ["cidr", "extra", "name"]


def test_network_normalization_and_null_gateway(store: Store) -> None:
    net = store.create_network({"cidr": "192.168.7.0/24", "gateway_ip": None, "external": True})
    assert (net["gateway_ip"], net["external"]) == (None, True)
    net = store.create_network({"cidr": "192.168.8.0/255.255.255.0", "gateway_ip": "192.168.8.254"})
    assert (net["cidr"], net["gateway_ip"]) == ("192.168.8.0/24", "192.168.8.254")


def test_non_object_body_is_400(store: Store) -> None:
    assert rejected(400, store.create_network, ["10.0.0.0/24"]).details == [{"message": "must be a JSON object"}]


def test_duplicate_segmentation_id_is_409(store: Store) -> None:
    store.create_network({"cidr": "10.0.0.0/24", "segmentation_id": 7})
    error = rejected(409, store.create_network, {"cidr": "10.1.0.0/24", "segmentation_id": 7})
    assert fields_of(error) == ["segmentation_id"]
    other = store.create_network({"cidr": "10.2.0.0/24"})
    rejected(409, store.update_network, other["id"], {"segmentation_id": 7})
    assert len(store.list_networks()) == 2


def test_update_network(store: Store) -> None:
    net = store.create_network({"name": "a", "cidr": "10.0.0.0/24"})
    changed = store.update_network(net["id"], {"name": "b", "cidr": "10.9.0.0/16", "external": True})
    assert changed == {**net, "name": "b", "cidr": "10.9.0.0/16", "gateway_ip": "10.9.0.1", "external": True}
    assert store.update_network(net["id"], {"segmentation_id": 99})["segmentation_id"] == 99
    assert store.update_network(net["id"], {"gateway_ip": None})["gateway_ip"] is None
    assert store.update_network(net["id"], {})["gateway_ip"] is None
    assert store.get_network(net["id"])["segmentation_id"] == 99


def test_rejected_update_changes_nothing(store: Store) -> None:
    net = store.create_network({"name": "a", "cidr": "10.0.0.0/24"})
    rejected(400, store.update_network, net["id"], {"name": "b", "gateway_ip": "10.1.0.1"})
    rejected(400, store.update_network, net["id"], {"name": "b", "id": "x"})
    assert store.get_network(net["id"]) == net


def test_network_with_ports_keeps_its_cidr_and_cannot_be_deleted(store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    port = store.create_port(port_body(net["id"]))
    assert fields_of(rejected(409, store.update_network, net["id"], {"cidr": "10.1.0.0/24"})) == ["cidr"]
    error = rejected(409, store.update_network, net["id"], {"gateway_ip": port["ip_address"]})
    assert fields_of(error) == ["gateway_ip"]
    assert store.update_network(net["id"], {"cidr": "10.0.0.0/24", "name": "same cidr is fine"})["name"]
    rejected(409, store.delete_network, net["id"])
    store.delete_port(port["id"])
    store.delete_network(net["id"])
    rejected(404, store.get_network, net["id"])


def test_unknown_ids_are_404(store: Store) -> None:
    for call, args in [
        (store.get_network, ("nope",)),
        (store.update_network, ("nope", {"name": "x"})),
        (store.delete_network, ("nope",)),
        (store.get_port, ("nope",)),
        (store.update_port, ("nope", {"name": "x"})),
        (store.delete_port, ("nope",)),
    ]:
        rejected(404, call, *args)


# -- ports -------------------------------------------------------------------------------------


def test_port_create_normalizes_and_defaults(store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    body = port_body(net["id"], mac_address="FA-16-3E-00-00-AA", binding={"dpid": DPID.upper(), "interface": "vm1"})
    port = store.create_port(body)
    assert port == {
        "id": port["id"],
        "network_id": net["id"],
        "name": "",
        "mac_address": "fa:16:3e:00:00:aa",
        "ip_address": "10.0.0.11",
        "binding": {"dpid": DPID, "interface": "vm1"},
        "port_security_enabled": True,
        "security_group_ids": [default_group(store)["id"]],
    }
    assert store.get_port(port["id"]) == port


def test_port_on_unknown_network_is_404(store: Store) -> None:
    error = rejected(404, store.create_port, port_body("missing"))
    assert fields_of(error) == ["network_id"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ip_address": "10.0.1.5"}, "ip_address"),  # outside the cidr
        ({"ip_address": "10.0.0.0"}, "ip_address"),
        ({"ip_address": "10.0.0.255"}, "ip_address"),
        ({"ip_address": "10.0.0.300"}, "ip_address"),
        ({"mac_address": "01:00:5e:00:00:01"}, "mac_address"),  # multicast
        ({"mac_address": "00:00:00:00:00:00"}, "mac_address"),
        ({"mac_address": "fa:16:3e:00:00"}, "mac_address"),
        ({"mac_address": "fa:16:3e-00-00-01"}, "mac_address"),
        ({"binding": {"dpid": "1", "interface": "eth1"}}, "binding.dpid"),
        ({"binding": {"dpid": DPID, "interface": "a-very-long-name0"}}, "binding.interface"),
        ({"binding": {"dpid": DPID, "interface": "bad/name"}}, "binding.interface"),
        ({"binding": {"dpid": DPID}}, "binding.interface"),
        ({"binding": {"dpid": DPID, "interface": "e1", "host": "x"}}, "binding.host"),
        ({"binding": "s1-eth1"}, "binding"),
        ({"port_security_enabled": 1}, "port_security_enabled"),
        ({"security_groups": []}, "security_groups"),
    ],
)
def test_invalid_port_is_400_naming_the_field(store: Store, overrides: dict, field: str) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    error = rejected(400, store.create_port, port_body(net["id"], **overrides))
    assert fields_of(error) == [field]
    assert store.list_ports() == []


def test_port_conflicts_are_409(store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    other = store.create_network({"cidr": "10.0.0.0/24"})
    first = store.create_port(port_body(net["id"], 1))
    clashes = {
        "mac_address": port_body(net["id"], 2, mac_address=first["mac_address"]),
        "ip_address": port_body(net["id"], 2, ip_address=first["ip_address"]),
        "binding": port_body(net["id"], 2, binding=first["binding"]),
    }
    for field, body in clashes.items():
        assert fields_of(rejected(409, store.create_port, body)) == [field]
    error = rejected(409, store.create_port, port_body(net["id"], 2, ip_address="10.0.0.1"))
    assert fields_of(error) == ["ip_address"]  # the gateway
    # The same MAC and IP are fine on another (overlapping) network; the interface is not.
    twin = port_body(other["id"], 1, binding={"dpid": DPID, "interface": "s1-eth9"})
    assert store.create_port(twin)["ip_address"] == first["ip_address"]
    assert len(store.list_ports()) == 2


def test_update_port(store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    port = store.create_port(port_body(net["id"], 1))
    same = store.update_port(port["id"], {k: port[k] for k in ("mac_address", "ip_address", "binding")})
    assert same == port
    changed = store.update_port(
        port["id"],
        {
            "name": "vm",
            "mac_address": "FA:16:3E:00:00:99",
            "ip_address": "10.0.0.99",
            "binding": {"dpid": "00000000000000FF", "interface": "tap0"},
            "port_security_enabled": False,
            "security_group_ids": [],
        },
    )
    assert changed == {
        **port,
        "name": "vm",
        "mac_address": "fa:16:3e:00:00:99",
        "ip_address": "10.0.0.99",
        "binding": {"dpid": "00000000000000ff", "interface": "tap0"},
        "port_security_enabled": False,
        "security_group_ids": [],
    }
    assert store.get_port(port["id"]) == changed


def test_rejected_port_update_changes_nothing(store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    first = store.create_port(port_body(net["id"], 1))
    second = store.create_port(port_body(net["id"], 2))
    rejected(409, store.update_port, second["id"], {"name": "x", "ip_address": first["ip_address"]})
    rejected(409, store.update_port, second["id"], {"name": "x", "binding": first["binding"]})
    rejected(400, store.update_port, second["id"], {"name": "x", "network_id": net["id"]})
    rejected(400, store.update_port, second["id"], {"name": "x", "binding": {"dpid": DPID}})
    rejected(400, store.update_port, second["id"], {"name": "x", "ip_address": "10.0.5.1"})
    assert store.get_port(second["id"]) == second


def test_list_ports_by_network(store: Store) -> None:
    a = store.create_network({"cidr": "10.0.0.0/24"})
    b = store.create_network({"cidr": "10.0.0.0/24"})
    pa = store.create_port(port_body(a["id"], 1))
    pb = store.create_port(port_body(b["id"], 2))
    assert store.list_ports() == [pa, pb]
    assert store.list_ports(network_id=b["id"]) == [pb]
    assert store.list_ports(network_id="unknown") == []


# -- snapshot and persistence ------------------------------------------------------------------


def test_snapshot_is_the_policy_model(store: Store) -> None:
    net = store.create_network({"name": "n", "cidr": "10.0.0.0/24", "segmentation_id": 5})
    port = store.create_port(port_body(net["id"], 1, name="vm", port_security_enabled=False))
    policy = store.snapshot()
    assert isinstance(policy, Policy)
    assert policy.networks == (Network(net["id"], "n", "10.0.0.0/24", "10.0.0.1", 5, False),)
    assert policy.ports == (
        Port(port["id"], net["id"], "vm", port["mac_address"], "10.0.0.11", DPID, "s1-eth1", False, (), key=1),
    )


def test_state_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deep/er/sdn.db"  # the directory is created
    first = Store(url)
    net = first.create_network({"cidr": "10.0.0.0/24"})
    port = first.create_port(port_body(net["id"]))
    first.save_switch(DPID, [SwitchPort("s1-eth1", 1, "02:00:00:00:00:01")])
    first.close()
    again = Store(url)
    assert again.list_networks() == [net]
    assert again.list_ports() == [port]
    assert again.load_switches() == [Switch(DPID, (SwitchPort("s1-eth1", 1, "02:00:00:00:00:01"),))]


def test_switches_and_links_are_replaced_not_merged(store: Store) -> None:
    assert store.load_switches() == [] and store.load_links() == []
    store.save_switch("0000000000000002", [])
    a, b, c = (SwitchPort(name, n, f"02:00:00:00:00:0{n}") for n, name in enumerate("abc", 1))
    b_down = SwitchPort("b", 2, b.mac, up=False)
    store.save_switch(DPID, [a, b])
    store.save_switch(DPID, [c, b_down])
    assert store.load_switches() == [Switch("0000000000000002", ()), Switch(DPID, (b_down, c))]
    one = Link.between(DPID, 3, "0000000000000002", 1)
    two = Link.between("0000000000000002", 2, "0000000000000003", 1)
    store.save_links([two, one, one])
    assert store.load_links() == sorted([one, two])
    store.save_links([two])
    assert store.load_links() == [two]


@pytest.mark.parametrize(
    "make_url",
    [
        lambda tmp: f"sqlite:///{tmp}/file-not-dir/sdn.db",  # a file where the directory should be
        lambda tmp: f"sqlite:///{tmp}/garbage.db",  # not a database
        lambda tmp: f"sqlite:///{tmp}",  # a directory
        lambda tmp: "nosuchdialect://host/db",
        lambda tmp: "not a url",
    ],
)
def test_unusable_database_is_one_clear_line(tmp_path: Path, make_url) -> None:  # noqa: ANN001
    (tmp_path / "file-not-dir").write_text("x")
    (tmp_path / "garbage.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as info:
        Store(make_url(tmp_path))
    message = str(info.value)
    assert message.startswith("cannot open database ") and "\n" not in message


def test_concurrent_writers_get_distinct_segmentation_ids(store: Store) -> None:
    errors: list[BaseException] = []

    def create() -> None:
        try:
            for _ in range(10):
                store.create_network({"cidr": "10.0.0.0/24"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(n["segmentation_id"] for n in store.list_networks()) == list(range(1, 81))
