"""/docs, offline: Swagger UI's script and style from the swagger-ui-bundle-v2 package (Swagger
UI 5, which reads the OpenAPI 3.1 that FastAPI writes), served by this app under /docs/assets/
instead of FastAPI's default CDN links, so the page works with no network. ReDoc, which FastAPI
would also load from a CDN, is not offered."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"


def install_docs(app: FastAPI) -> None:
    """The Swagger UI page at /docs and its assets (the app is created with ``docs_url=None``)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_path), name="swagger-ui-assets")

    @app.get(DOCS_PATH, include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            # The online validator badge would fetch from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
