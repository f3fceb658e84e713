"""Fixtures of the REST API tests: a real store in tmp_path, the stand-in runtime, the app and its client."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from controller.api import create_app
from controller.store import Store
from tests.unit.api_helpers import StubRuntime, one_switch


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/sdn.db")


@pytest.fixture
def runtime(store: Store) -> StubRuntime:
    return StubRuntime(store, [one_switch(), {**one_switch(False), "dpid": "00000000000000bb"}])


@pytest.fixture
def app(store: Store, runtime: StubRuntime) -> Flask:
    return create_app(store, runtime, version="1.2.3")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
