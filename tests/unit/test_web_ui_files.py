"""The web view's files: served by the API's own app at /ui/ without the token (its data still needs it), every
asset the page loads is in controller/ui/ and nowhere else, and a wheel carries them all."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from flask.testing import FlaskClient

from controller.api import create_app
from controller.store import Store
from tests.unit.api_helpers import TOKEN, StubRuntime, assert_error

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "controller" / "ui"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, not a place: the only URL the assets may hold


def guarded(store: Store) -> FlaskClient:
    return create_app(store, StubRuntime(store), api_token=TOKEN).test_client()


def test_the_page_is_served_without_the_token_and_its_data_only_with_it(store: Store) -> None:
    client = guarded(store)
    page = client.get("/ui/")
    assert page.status_code == 200 and page.mimetype == "text/html" and b'id="view"' in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/ui").status_code in (301, 308) and client.get("/ui").location.endswith("/ui/")
    assert client.get("/ui/app.js").status_code == 200
    assert_error(client.get("/ui/missing.js"), 404)
    assert_error(client.get("/v1/networks"), 401)
    assert "Content-Security-Policy" not in client.get("/v1/health").headers
    assert client.get("/v1/health").json["token_required"] is True
    assert create_app(store, StubRuntime(store)).test_client().get("/v1/health").json["token_required"] is False


def referenced(name: str) -> set[str]:
    """The files `name` loads: src/href of the page, imports of a module, recursively."""
    text = (UI / name).read_text()
    found = set(re.findall(r'(?:src|href)="([^"#]+)"', text) + re.findall(r'from "\./([^"]+)"', text))
    return found | {deeper for child in found if child.endswith(".js") for deeper in referenced(child)}


def test_every_asset_the_page_loads_is_served_from_the_package(store: Store) -> None:
    client = guarded(store)
    loaded = referenced("index.html")
    assert {"app.js", "style.css", "favicon.svg", "topology.js", "policy.js", "trace.js", "api.js"} <= loaded
    assert loaded == {p.name for p in UI.iterdir()} - {"index.html"}  # nothing unused ships
    for name in loaded:
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        if name.endswith(".js"):
            assert response.mimetype.endswith("javascript"), (name, response.mimetype)  # module scripts need it
    for path in UI.iterdir():
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", path.read_text())) - {SVG_NAMESPACE}
        assert not urls, f"{path.name} reaches outside the controller: {urls}"


def test_a_wheel_carries_the_page(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("controller", "apps", "mininet_topos"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "out"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "out").glob("*.whl"))
    carried = {n.removeprefix("controller/ui/") for n in zipfile.ZipFile(wheel).namelist() if "/ui/" in n}
    assert carried == {p.name for p in UI.iterdir()}
