"""The OpenAPI page ``/docs`` comes with everything it needs from the station itself: a plant
network has no route to a CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tests.hmi.helpers import running_rig


class _References(HTMLParser):
    """Every URL the page loads or links: src/href attributes and quoted URLs in inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:  # SwaggerUIBundle({url: '/openapi.json', ...})
            self.urls += re.findall(r"""(?:url|oauth2RedirectUrl|validatorUrl)["']?\s*:\s*["']([^"']+)["']""", data)
            self.urls += re.findall(r"https?://[^\s\"'<>)]+", data)


def test_docs_page_and_every_asset_it_references_come_from_the_station(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig, rig.client() as anon:
        page = anon.get("/docs")
        assert page.status_code == 200
        assert "SwaggerUIBundle" in page.text
        refs = _References()
        refs.feed(page.text)
        base = rig.url + "/docs"
        urls = sorted({urljoin(base, u) for u in refs.urls})
        station = urlsplit(rig.url).netloc
        assert [u for u in urls if urlsplit(u).netloc != station] == []  # nothing from the internet
        paths = {urlsplit(u).path for u in urls}
        assert {"/openapi.json", "/static/swagger-ui/swagger-ui-bundle.js", "/static/swagger-ui/swagger-ui.css"} <= paths
        for path in sorted(paths):
            reply = anon.get(path)
            assert reply.status_code == 200, path
            assert reply.content, path
        assert anon.get("/static/swagger-ui/swagger-ui.css").headers["content-type"].startswith("text/css")
        assert "javascript" in anon.get("/static/swagger-ui/swagger-ui-bundle.js").headers["content-type"]
        spec = anon.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1")  # Swagger UI 5 renders 3.1; version 4 would show an error
        assert "/docs" not in spec["paths"]


def test_redoc_from_a_cdn_is_not_served(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig, rig.client() as anon:
        assert anon.get("/redoc").status_code in (401, 404)
