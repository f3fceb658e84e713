"""The web view (/ui/) in headless Chromium against a real controller and Mininet: what it shows follows the
fabric and the policy, changes made from it reach the switches, and the API's refusals read as the API words them.

Fixtures: `page` (tests/integration/conftest.py) fails a test whose browser console logged a warning or error it
did not expect, and saves screenshots under artifacts/web-ui/.
"""

from __future__ import annotations

import time

import pytest
import requests
from helpers import Api, EchoServer, register, tcp_ok, wait_until
from routers_fixtures import ExternalEnv
from selenium.webdriver.support.ui import Select
from webpage import Page

SHOWN = 10.0  # seconds for the page to show what the API shows (it polls every 1.5 s)
REFUSED = "Failed to load resource: the server responded with a status of 4"  # the console's line for a 4xx
TOKEN = "ui-s3cret"


def link_key(dpid: str, port: int, peer: str, peer_port: int) -> str:
    """The page's name of a link, the same from either end."""
    return "-".join(sorted([f"{dpid}:{port}", f"{peer}:{peer_port}"]))


def test_topology_shows_switches_links_ports_by_network_and_a_link_going_down(api, tenants, page: Page) -> None:
    run, reg = tenants("three")
    page.open("topology")
    dpids = {s.dpid for s in run.plan.switches}
    page.wait(lambda: {e.get_attribute("data-dpid") for e in page.all(".switch.connected")} == dpids, SHOWN,
              "every switch, connected")
    page.wait(lambda: len(page.all('.link[data-state="up"]')) == len(run.plan.links), SHOWN, "every link, up")
    assert len(page.all(".port-trunk")) == 2 * len(run.plan.links)

    # Every VM's interface is drawn in its network's colour: one colour per network, none shared.
    def fill(vm) -> str:
        dot = page.one(f'.switch[data-dpid="{vm.dpid}"] .port[data-port="{vm.interface}"]')
        assert dot is not None and "port-port" in dot.get_attribute("class"), vm
        return dot.find_element("css selector", "circle").get_attribute("fill")
    colours = {vm.tenant: set() for vm in run.plan.vms}
    for vm in run.plan.vms:
        colours[vm.tenant].add(fill(vm))
    assert all(len(c) == 1 for c in colours.values()) and len(set.union(*colours.values())) == len(colours), colours
    page.screenshot("links-up")

    a, b = (run.plan.switch(label) for label in run.plan.links[0])
    link = next(lk for lk in api.get("/switches") if lk["dpid"] == a.dpid)["links"]
    port = next(lk for lk in link if lk["peer_dpid"] == b.dpid)
    key = link_key(a.dpid, port["port"], b.dpid, port["peer_port"])
    state = lambda: page.one(f'.link[data-link="{key}"]').get_attribute("data-state")  # noqa: E731
    assert state() == "up"
    run.net.configLinkStatus(a.name, b.name, "down")
    went = time.monotonic()
    page.wait(lambda: state() == "down", SHOWN, f"link {key} to show down")
    print(f"link {key} shown down {time.monotonic() - went:.1f} s after it went down")
    assert len(page.all('.link[data-state="up"]')) == len(run.plan.links) - 1
    page.screenshot("link-down")
    run.net.configLinkStatus(a.name, b.name, "up")
    page.wait(lambda: state() == "up", 15, f"link {key} to show up again")


@pytest.fixture
def web(api: Api, net_factory):
    """`single`: a1 stays in `default`; a2 moves to a new group `web` (egress only: nothing may come in)."""
    run = net_factory("single")
    reg = register(api, run.plan)
    group = api.create("security-groups", {"name": "web"})["id"]
    api.patch(f"/ports/{reg.ports['a2']}", {"security_group_ids": [group]})
    return run, reg, group


def fill_rule_form(page: Page, group: str, protocol: str, low: str, high: str) -> None:
    Select(page.one('#add-rule select[name="security_group_id"]')).select_by_visible_text(group)
    Select(page.one('#add-rule select[name="direction"]')).select_by_visible_text("ingress")
    Select(page.one('#add-rule select[name="protocol"]')).select_by_visible_text(protocol)
    for name, value in (("port_range_min", low), ("port_range_max", high)):
        field = page.one(f'#add-rule input[name="{name}"]')
        field.clear()
        field.send_keys(value)
    page.one('#add-rule button[type="submit"]').click()


def test_rules_added_through_rest_and_from_the_page_reach_the_switches(api, web, page: Page) -> None:
    run, _, group = web
    a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    page.open("security-groups")
    row = lambda rule_id: page.one(f'section[data-id="{group}"] tr[data-id="{rule_id}"]')  # noqa: E731

    # A rule added through REST appears, with its counters once traffic used it (or "n/a" without counters).
    by_rest = api.create("security-group-rules", {"security_group_id": group, "direction": "ingress",
                                                  "protocol": "tcp", "port_range_min": 5001, "port_range_max": 5001})
    assert tcp_ok(a1, a2, ip2, 5001)
    page.wait(lambda: row(by_rest["id"]) is not None, SHOWN, "the rule added through REST")
    if "stats" in api.get(f"/security-group-rules/{by_rest['id']}"):
        def counted() -> bool:  # the API's counters read from the switches now; the page's from its next poll
            packets = api.get(f"/security-group-rules/{by_rest['id']}?refresh=true")["stats"]["packets"]
            return packets > 0 and row(by_rest["id"]).find_element("css selector", ".stat-packets").text == \
                f"{packets:,}"
        page.wait(counted, SHOWN, "the rule's packet counter as the API counts it")
    else:
        assert [c.text for c in row(by_rest["id"]).find_elements("css selector", "td.na")] == ["n/a", "n/a"]

    # A rule added from the page opens its port.
    assert not tcp_ok(a1, a2, ip2, 5002)
    fill_rule_form(page, "web", "tcp", "5002", "5002")
    page.wait(lambda: "added" in page.text("#rule-outcome"), SHOWN, "the page to add the rule")
    added = next(r for r in api.get(f"/security-group-rules?security_group_id={group}") if r["port_range_min"] == 5002)
    assert (added["direction"], added["protocol"], added["port_range_max"]) == ("ingress", "tcp", 5002)
    assert tcp_ok(a1, a2, ip2, 5002)
    page.wait(lambda: row(added["id"]) is not None, SHOWN, "the rule added from the page, in its group")

    # A rule the API refuses: the page shows the API's own words, and nothing changed.
    before = api.get(f"/security-groups/{group}")["rules"]
    bad = {"security_group_id": group, "direction": "ingress", "protocol": "tcp", "port_range_min": 5009,
           "port_range_max": 5003}
    refusal = api.post("/security-group-rules", bad, expect=(400, 422))["error"]
    page.expect_console(f"/v1/security-group-rules - {REFUSED}")
    fill_rule_form(page, "web", "tcp", "5009", "5003")
    shown = page.wait(lambda: page.one("#rule-outcome .api-error"), SHOWN, "the API's refusal")
    assert shown.find_element("css selector", ".api-error-message").text == refusal["message"]
    assert [li.text for li in shown.find_elements("css selector", "li")] == \
        [f"{d['field']}: {d['message']}" for d in refusal["details"]]
    assert api.get(f"/security-groups/{group}")["rules"] == before
    page.screenshot("refused")

    # Removing it from the page closes the port again.
    row(added["id"]).find_element("css selector", "button.remove-rule").click()
    page.wait(lambda: row(added["id"]) is None, SHOWN, "the removed rule to go from the page")
    assert not tcp_ok(a1, a2, ip2, 5002) and tcp_ok(a1, a2, ip2, 5001)


def trace_served(api: Api) -> bool:
    return "post" in api.get("/openapi.json")["paths"].get("/trace", {})


def test_why_cant_a_reach_b_shows_the_stage_that_drops_and_the_ports_groups(api, web, page: Page) -> None:
    run, reg, group = web
    page.open("trace")
    if not trace_served(api):  # the trace lands separately: until then the page says so and sends nothing
        page.wait(lambda: "not available" in page.text("#trace-availability"), SHOWN, "the trace marked unavailable")
        assert not page.one('#trace button[type="submit"]').is_enabled()
        return
    api.create("security-group-rules", {"security_group_id": group, "direction": "ingress", "protocol": "tcp",
                                        "port_range_min": 5001, "port_range_max": 5001})

    def trace(port: str) -> str:
        page.wait(lambda: page.one(f'#trace option[value="{reg.ports["a1"]}"]'), SHOWN, "a1 among the sources")
        Select(page.one('#trace select[name="port_id"]')).select_by_value(reg.ports["a1"])
        destination = page.one('#trace input[name="ip_dst"]')
        destination.clear()
        destination.send_keys(run.plan.vm("a2").ip)
        Select(page.one('#trace select[name="protocol"]')).select_by_visible_text("tcp")
        field = page.one('#trace input[name="tp_dst"]')
        field.clear()
        field.send_keys(port)
        old = page.one(".trace-result")
        page.one('#trace button[type="submit"]').click()
        result = page.wait(lambda: (new := page.one(".trace-result")) is not None and new != old and new, SHOWN,
                           "the trace's answer")
        return result.get_attribute("data-verdict")

    assert trace("5001") == "output"  # the control: the rule lets it in
    assert trace("6000") == "drop"
    told = api.post("/trace", {"port_id": reg.ports["a1"], "ip_dst": run.plan.vm("a2").ip, "protocol": "tcp",
                               "tp_dst": 6000})
    deciding = page.one("tr.deciding")
    assert deciding is not None and "decided here" in deciding.text
    assert deciding.find_element("css selector", ".stage-table").text == told["stages"][-1]["table"]
    assert len(page.all(".stages tbody tr")) == len(told["stages"])
    groups = page.text(".groups-in-play")
    assert "destination a2: web" in groups and "source a1: default" in groups, groups
    page.screenshot("trace-drop")

    # A stage's owner links to the object, highlighted on its page: the flow that found a2's port.
    a2 = reg.ports["a2"]
    found = next(i for i, stage in enumerate(told["stages"]) if (stage["owner"] or {}).get("id") == a2)
    page.one(f'.stages tr[data-stage="{found}"] .stage-owner a').click()
    page.wait(lambda: page.one(f'table.ports tr.focused[data-id="{a2}"]'), SHOWN, "a2's port, highlighted")


def test_topology_shows_routers_floating_ips_and_balancers_with_member_health(external: ExternalEnv,
                                                                               page: Page) -> None:
    env = external
    router = env.router("r1", ("a", "c"))
    fip = env.floating_ip("a2")
    balancer = env.api.post("/load-balancers", {
        "name": "web", "network_id": env.network("a"), "vip_address": "10.0.0.100", "protocol": "tcp", "port": 5001,
        "members": [{"ip_address": env.ip("a2"), "port": 5002}, {"ip_address": env.ip("a3"), "port": 5002}],
        "health_monitor": {"type": "tcp", "interval_s": 0.5, "timeout_s": 0.5, "max_retries": 2}})
    with EchoServer(env.host("a2"), tcp=5002):  # a3 serves nothing: it goes OFFLINE
        def statuses() -> dict[str, str]:
            return {m["id"]: m["status"] for m in env.api.get(f"/load-balancers/{balancer['id']}")["members"]}
        wait_until(lambda: sorted(statuses().values()) == ["OFFLINE", "ONLINE"], 15, "a3 OFFLINE, a2 ONLINE")
        page.open("topology")
        page.wait(lambda: all(page.one(f'.member[data-id="{member}"].member-{status.lower()}')
                              for member, status in statuses().items()), SHOWN, "members' health as the API has it")
        legs = page.all(f'.router[data-id="{router["id"]}"] .router-leg')
        assert len(legs) == 3  # a, c and its gateway on ext
        chip = page.one(f'.fip-chip[data-id="{fip["id"]}"]')
        assert chip is not None and chip.text == f"fip {fip['floating_ip_address']} → a2"
        page.wait(lambda: len(page.all(".port-chip.status-active")) == len(env.run.plan.vms), SHOWN,
                  "every VM's port ACTIVE")
        page.screenshot("logical")

        # The same objects on their own pages.
        page.go("routers")
        shown = page.wait(lambda: page.one(f'section.router[data-id="{router["id"]}"]'), SHOWN, "the router's page")
        assert f"gateway: ext {router['external_gateway']['ip_address']} (SNAT)" in shown.text
        assert len(shown.find_elements("css selector", "h4 + table")[0].find_elements("css selector", "tbody tr")) == 2
        page.go("floating-ips")
        shown = page.wait(lambda: page.one(f'tr[data-id="{fip["id"]}"]'), SHOWN, "the floating IP's row")
        assert fip["floating_ip_address"] in shown.text and env.ip("a2") in shown.text
        page.go("load-balancers")
        for member, status in statuses().items():
            page.wait(lambda m=member, st=status: st in page.text(f'table.members tr[data-id="{m}"]'), SHOWN,
                      f"member {member} {status}")


HOSTILE_NETWORK = '<img src=x onerror="window.pwned=1">'
HOSTILE_PORT = "<script>window.pwned=2</script>"


@pytest.mark.controller_args("--api-token", TOKEN)
def test_the_page_asks_for_the_token_once_and_shows_hostile_names_as_text(controller, page: Page) -> None:
    api = Api(controller.api, token=TOKEN)
    network = api.create("networks", {"name": HOSTILE_NETWORK, "cidr": "10.9.0.0/24"})
    api.create("ports", {"network_id": network["id"], "name": HOSTILE_PORT, "mac_address": "fa:16:3e:00:09:02",
                         "ip_address": "10.9.0.2", "binding": {"dpid": "00000000000000aa", "interface": "x1"}})
    page.expect_console(f"/v1/openapi.json - {REFUSED}")  # the wrong token, refused
    page.open("networks")
    dialog = page.wait(lambda: (d := page.one("#token-dialog")) and d.is_displayed() and d, SHOWN, "the token dialog")
    refusal = requests.get(f"{controller.api}/networks", headers={"Authorization": "Bearer wrong"}, timeout=5)
    page.one("#token").send_keys("wrong")
    dialog.find_element("css selector", "button").click()
    page.wait(lambda: page.text("#token-error") == refusal.json()["error"]["message"], SHOWN, "the API's 401 message")
    page.one("#token").send_keys(TOKEN)
    dialog.find_element("css selector", "button").click()

    def names_shown() -> bool:
        return page.text(f'tr[data-id="{network["id"]}"] .name') == HOSTILE_NETWORK
    page.wait(names_shown, SHOWN, "the network's name, as text")
    page.go("ports")
    page.wait(lambda: page.text("table.ports .name") == HOSTILE_PORT, SHOWN, "the port's name, as text")
    page.driver.refresh()  # the token is kept for the tab: no second question
    page.go("networks")
    page.wait(names_shown, SHOWN, "the networks after a reload")
    assert not page.one("#token-dialog").is_displayed()
    assert page.driver.execute_script("return window.pwned === undefined && !document.querySelector('main img')")
