"""The controller's decisions about next hops and rates, on a clock the tests move by hand."""

from __future__ import annotations

from apps.model import Network, Router, RouterGateway, RouterInterface
from controller.neighbors import Directory, Leg, Neighbors, TokenBuckets, in_network

EXT = Network("ext", "ext", "203.0.113.0/24", "203.0.113.1", 100, True, ("0000000000000001", "s1-eth4"))
NET = Network("n1", "blue", "10.0.0.0/24", "10.0.0.1", 5)
ROUTER = Router("r1", "r", "fa:16:3f:00:00:07", 7, (RouterInterface("n1", "10.0.0.1"),),
                RouterGateway("ext", "203.0.113.5"))
A, B = ("ext", "203.0.113.1"), ("ext", "203.0.113.9")


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    buckets = TokenBuckets(rate=10, burst=10)
    assert [buckets.take("r1", 100.0) for _ in range(11)] == [True] * 10 + [False]
    assert buckets.take("r2", 100.0)  # buckets are per key
    assert not buckets.take("r1", 100.05) and buckets.take("r1", 100.15) and not buckets.take("r1", 100.15)
    assert sum(buckets.take("r1", 200.0) for _ in range(20)) == 10  # refilled to the burst, not beyond


def test_token_buckets_keep_at_most_max_keys() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_keys=2)
    for key in ("a", "b", "c"):
        assert buckets.take(key, 0.0)
    assert len(buckets._buckets) == 2 and not buckets.take("c", 0.0)


def test_one_request_per_address_per_interval_and_the_address_stays_pending() -> None:
    neighbors = Neighbors(request_interval=1.0, pending_for=5.0)
    assert neighbors.ask(A, 10.0)
    assert not neighbors.ask(A, 10.5) and neighbors.ask(B, 10.5)
    assert neighbors.ask(A, 11.0)
    assert neighbors.expects(A, 15.9) and not neighbors.expects(A, 16.1)
    assert neighbors.pending(16.1) == set()
    assert not neighbors.expects(("ext", "203.0.113.77"), 10.0)


def test_pending_addresses_are_bounded() -> None:
    neighbors = Neighbors(pending_for=5.0, max_pending=2)
    assert neighbors.ask(A, 0.0) and neighbors.ask(B, 0.0)
    assert not neighbors.ask(("ext", "203.0.113.3"), 1.0)  # full
    assert neighbors.ask(("ext", "203.0.113.3"), 6.0)  # the others timed out


def test_a_confirmed_binding_is_refreshed_every_interval_and_expires_unconfirmed() -> None:
    neighbors = Neighbors(refresh_interval=60.0, expire_after=3, pending_for=5.0)
    assert neighbors.ask(A, 0.0)
    neighbors.confirmed(A, 1.0)
    assert neighbors.expects(A, 1000.0)  # bound: answers are welcome whenever they come
    assert neighbors.due(60.0).refresh == ()
    assert neighbors.due(61.0).refresh == (A,)
    assert neighbors.due(62.0).refresh == ()  # asked: not again within the interval
    neighbors.confirmed(A, 63.0)  # it answered
    assert neighbors.due(121.5).refresh == () and neighbors.due(123.0).refresh == (A,)
    assert neighbors.due(183.0).refresh == (A,)  # still silent: asked once more
    assert neighbors.due(242.9).expire == ()
    assert neighbors.due(243.0).expire == ((A, 63.0),)


def test_the_stores_bindings_replace_what_was_known() -> None:
    neighbors = Neighbors()
    neighbors.confirmed(A, 1.0)
    neighbors.known([(B, 5.0)])
    assert neighbors.bound() == {B: 5.0} and not neighbors.expects(A, 2.0)
    neighbors.forget(B)
    assert neighbors.bound() == {}


def test_the_directory_finds_routers_and_networks_the_ways_packet_ins_name_them() -> None:
    directory = Directory()
    directory.put_network("ext", EXT)
    directory.put_network("n1", NET)
    directory.put_router("r1", ROUTER)
    assert directory.network_by_segment(100) is EXT and directory.network_by_segment(None) is None
    assert directory.network_by_uplink("0000000000000001", "s1-eth4") is EXT
    assert directory.router_by_key(7) is ROUTER and directory.router_by_mac("FA:16:3F:00:00:07") is ROUTER
    assert directory.leg(ROUTER, NET) == Leg(ROUTER, NET, "10.0.0.1", False)
    assert directory.leg(ROUTER, EXT) == Leg(ROUTER, EXT, "203.0.113.5", True)
    assert directory.gateway_legs("ext") == [Leg(ROUTER, EXT, "203.0.113.5", True)]
    assert directory.gateway_legs("n1") == []
    moved = Network("ext", "ext", "203.0.113.0/24", "203.0.113.1", 101, True, None)
    directory.put_network("ext", moved)
    assert directory.network_by_segment(100) is None and directory.network_by_uplink("0000000000000001",
                                                                                      "s1-eth4") is None
    directory.put_router("r1", Router("r1", "r", "fa:16:3f:00:00:07", 7))
    assert directory.gateway_legs("ext") == [] and directory.router_by_key(7) is not None
    directory.clear()
    assert directory.router_by_key(7) is None and directory.network("n1") is None


def test_a_key_another_object_took_is_not_dropped_with_the_old_one() -> None:
    directory = Directory()
    directory.put_network("old", NET)
    directory.put_network("new", Network("new", "x", "10.1.0.0/24", None, 5))  # same segment, in one batch
    directory.put_network("old", None)
    assert directory.network_by_segment(5).id == "new"


def test_in_network() -> None:
    assert in_network("203.0.113.1", EXT) and not in_network("10.0.0.1", EXT) and not in_network("nonsense", EXT)
