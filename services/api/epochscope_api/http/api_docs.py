"""The API's documentation page, /docs (Swagger UI), served with assets from a pinned PyPI package (fastapi-offline,
whose static folder ships swagger-ui-bundle.js and swagger-ui.css) instead of FastAPI's default CDN links at a
floating major version: the page shares the origin where the web UI keeps the bearer token, so no script from
elsewhere may run there. /redoc is gone: ReDoc fetches its logo from its vendor's CDN, and /docs and the committed
schemas/openapi.json cover the same ground.

The page carries its own Content-Security-Policy: Swagger UI's one inline script is allowed by its hash, and its
inline styles.
"""

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"


def _policy(script_hashes: list[str]) -> str:
    scripts = " ".join(["'self'", *(f"'sha256-{digest}'" for digest in script_hashes)])
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
        " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def _inline_script_hashes(html: str) -> list[str]:
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return [base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() for script in scripts]


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": _policy(_inline_script_hashes(html))})


def install_api_docs(app: FastAPI) -> None:
    """/docs and its assets; the app must be created with docs_url=None and redoc_url=None."""
    assert app.openapi_url is not None
    swagger = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=None,
    ).body.decode()
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(swagger)
