"""Link bookkeeping on a controlled clock: both directions to make a link, either one stale to lose it."""

from __future__ import annotations

from apps.topology import Link
from controller.fabric import Fabric

A, B = ("0000000000000001", 3), ("0000000000000002", 3)
LINK = Link.between(*A, *B)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_link_needs_both_directions_within_the_timeout():
    clock = Clock()
    fabric = Fabric([], [], link_timeout=3.0, clock=clock)
    assert not fabric.lldp_heard(A, B)
    clock.now += 3.5  # the first direction is stale by the time the second is heard
    assert not fabric.lldp_heard(B, A) and fabric.links() == []
    assert fabric.lldp_heard(A, B) and fabric.links() == [LINK]
    assert not fabric.lldp_heard(A, B)  # a refresh is not news


def test_a_link_goes_when_either_direction_goes_stale():
    clock = Clock()
    fabric = Fabric([], [], link_timeout=3.0, clock=clock)
    fabric.lldp_heard(A, B)
    fabric.lldp_heard(B, A)
    for _ in range(3):
        clock.now += 2
        fabric.lldp_heard(A, B)  # only one direction keeps coming
        if fabric.expire_links():
            break
    assert fabric.links() == []
    assert not fabric.expire_links()


def test_persisted_links_count_until_they_expire_and_can_be_forgotten():
    clock = Clock()
    fabric = Fabric([], [LINK], link_timeout=3.0, clock=clock)
    assert fabric.links() == [LINK]
    assert fabric.forget_links([LINK]) and fabric.links() == []
    assert not fabric.forget_links([LINK])
    fabric = Fabric([], [LINK], link_timeout=3.0, clock=clock)
    clock.now += 3.1
    assert fabric.expire_links() and fabric.links() == []


def test_refusals_count_and_keep_the_last_offender():
    fabric = Fabric([], [], link_timeout=3.0)
    assert fabric.refusal(A[0]) is None
    fabric.refuse(A[0], "s1-eth1", "forged")
    fabric.refuse(A[0], "s1-eth2", "replayed")
    refusal = fabric.refusal(A[0])
    assert (refusal.count, refusal.interface, refusal.reason) == (2, "s1-eth2", "replayed")
