"""Fixtures for Mininet tests: a real sdn-controller process and networks pointed at it.

Every test here is marked `mininet` (tests/conftest.py). Fixtures clean up only what they made:
their own controller PID, their own bridges (random name prefix per network).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from routers_fixtures import external  # noqa: F401  # the `external` topology fixture (routers, NAT)
from webpage import ARTIFACTS, Page, chromium

from mininet_topos.control import HOST, ControllerError, ControllerProcess, free_port, log_tail
from mininet_topos.launcher import Running, random_prefix, running
from mininet_topos.reach import wait_until
from mininet_topos.rest import Api, Registration, register
from mininet_topos.topos import Layout

NetFactory = Callable[..., Running]
SCREENSHOTS = pytest.StashKey[list[Path]]()


def pytest_configure(config: pytest.Config) -> None:
    # Mininet 2.3.0.dev6 uses distutils versions and log.warn: noise, not our findings.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:mininet.*")


@pytest.fixture
def controller(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ControllerProcess]:
    """`sdn-controller` on free ports with a fresh DB; `.api`, `.of_port`, `.stop(sig)`, `.restart()`,
    `.log_path`. Its log tail is added to the report of a failing test. Extra command-line options:
    `@pytest.mark.controller_args("--lldp-interval", "0.5")` on the test or its module."""
    marker = request.node.get_closest_marker("controller_args")
    ctl = ControllerProcess(tmp_path / "controller", extra_args=marker.args if marker else ())
    request.node.sdn_controller = ctl
    try:
        ctl.start(timeout=30)
    except ControllerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield ctl
    ctl.stop()


@pytest.fixture
def api(controller: ControllerProcess) -> Api:
    return Api(controller.api)


def _factory(stack: ExitStack, default_of: tuple[str, int]) -> NetFactory:
    def make(layout: Layout | str = "single", *, prefix: str | None = None,
             of_address: tuple[str, int] | None = None, connect_timeout: float | None = 10) -> Running:
        """A started network (`.net`, `.plan`, `.host("a1")`), torn down after the test."""
        return stack.enter_context(
            running(layout, prefix or random_prefix(), of_address or default_of, connect_timeout))
    return make


@pytest.fixture
def net_factory(controller: ControllerProcess) -> Iterator[NetFactory]:
    """`net_factory("three")`: a network whose switches point at the `controller` fixture."""
    with ExitStack() as stack:
        yield _factory(stack, controller.of_address)


def links_discovered(api: Api, run: Running) -> bool:
    """Every link of the plan shows up in GET /switches (from both ends)."""
    found = sum(len(s["links"]) for s in api.get("/switches"))
    return found == 2 * len(run.plan.links)


@pytest.fixture
def tenants(api: Api, net_factory: NetFactory) -> Callable[[str], tuple[Running, Registration]]:
    """`tenants("three")`: the topology built, both tenants registered, links discovered."""
    def build(layout: str) -> tuple[Running, Registration]:
        run = net_factory(layout)
        reg = register(api, run.plan)
        wait_until(lambda: links_discovered(api, run), 15, "LLDP to find every link")
        return run, reg
    return build


@pytest.fixture
def bare_net_factory() -> Iterator[NetFactory]:
    """Networks pointed at a port where nothing listens (default): for tests of the harness itself."""
    with ExitStack() as stack:
        yield _factory(stack, ("127.0.0.1", free_port()))


@pytest.fixture
def page(request: pytest.FixtureRequest, controller: ControllerProcess) -> Iterator[Page]:
    """A headless Chromium tab for the `controller` fixture's web view (`page.root`). After the test: a screenshot,
    and the test fails if the browser console logged a warning or error it did not expect."""
    driver = chromium()
    tab = Page(driver, request.node.name, f"http://{HOST}:{controller.api_port}")
    try:
        yield tab
    finally:
        try:
            tab.screenshot("end")
            problems = tab.console_problems()
        finally:
            driver.quit()
            request.config.stash.setdefault(SCREENSHOTS, []).extend(tab.shots)
    assert not problems, "the browser console logged:\n" + "\n".join(problems)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    shots = config.stash.get(SCREENSHOTS, [])
    if shots:
        terminalreporter.write_line(f"web view screenshots ({len(shots)}): {ARTIFACTS}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    ctl = getattr(item, "sdn_controller", None)
    if report.failed and ctl is not None:
        report.sections.append((f"controller log {ctl.log_path} (tail)", log_tail(ctl.log_path, 80)))
