"""The OpenAPI page ``/docs`` served from the station itself.

FastAPI's default page loads Swagger UI from a CDN, which a plant network cannot reach (the
page stays blank). The Swagger UI files are vendored under ``static/swagger-ui/`` (the npm
package ``swagger-ui-dist``, Apache-2.0, its LICENSE and NOTICE beside it); the PyPI package
``swagger-ui-bundle`` was not used because it carries Swagger UI 4, which cannot render the
OpenAPI 3.1 document FastAPI writes. The validator badge is turned off: it calls
validator.swagger.io.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS = "/static/swagger-ui"


def add_api_docs(app: FastAPI) -> None:
    """Serve ``/docs`` with local assets; the app must be created with ``docs_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
