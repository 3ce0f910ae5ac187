"""``/docs`` (Swagger UI) and ``/redoc`` from files shipped in the package, never a CDN.

FastAPI's own pages load their scripts and styles from a CDN, so on a machine
without internet ``/docs`` is a blank page.  These pages are FastAPI's
(:func:`~fastapi.openapi.docs.get_swagger_ui_html`,
:func:`~fastapi.openapi.docs.get_redoc_html`) pointed at local copies: the
Swagger UI and ReDoc bundles that the ``fastapi-offline`` wheel carries,
served under :data:`ASSETS_URL`, and the app's own favicon.  ReDoc's Google
Fonts link is left out, and the one address in ReDoc's bundle that it would
fetch at run time (its vendor's logo, on a CDN) is replaced as the bundle is
served (:func:`redoc_bundle`).  Both pages also carry a Content-Security-Policy
that lets the browser load nothing from another host.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

from api.web.pages import root_of

#: Where the bundles are served.
ASSETS_URL = "/docs-assets"
#: The files a page needs, all in :func:`assets_dir`.
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "/app/static/favicon.svg"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
#: Everything from this server only (the pages' own inline start-up scripts and styles
#: included; ReDoc runs its search in a worker made from a blob).
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)

#: What ReDoc's bundle would fetch from elsewhere, and what it gets instead (an empty
#: image: the bundle then hides the logo).
REDOC_FETCHES = {b"https://cdn.redoc.ly/redoc/logo-mini.svg": b"data:,"}

router = APIRouter(include_in_schema=False)


def assets_dir() -> Path:
    """The folder of the Swagger UI and ReDoc bundles (inside the ``fastapi_offline`` wheel)."""
    return Path(str(files("fastapi_offline") / "static"))


@lru_cache(maxsize=1)
def redoc_bundle() -> bytes:
    """ReDoc's bundle with :data:`REDOC_FETCHES` replaced; read once."""
    bundle = (assets_dir() / REDOC_JS).read_bytes()
    for remote, local in REDOC_FETCHES.items():
        bundle = bundle.replace(remote, local)
    return bundle


@router.get("/docs", response_class=HTMLResponse, response_model=None)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for the OpenAPI document, from local files."""
    root = root_of(request)
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} — API docs",
        swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}",
        swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
        swagger_favicon_url=f"{root}{FAVICON}",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
    )
    page.headers["Content-Security-Policy"] = CSP
    return page


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse, response_model=None)
def swagger_ui_redirect() -> HTMLResponse:
    """The page Swagger UI's OAuth2 flow returns to (FastAPI's own, no external files)."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse, response_model=None)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc for the OpenAPI document, from local files and without web fonts."""
    root = root_of(request)
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} — API reference",
        redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}",
        redoc_favicon_url=f"{root}{FAVICON}",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = CSP
    return page


@router.get(f"{ASSETS_URL}/{REDOC_JS}", response_class=Response, response_model=None)
def redoc_js() -> Response:
    """ReDoc's bundle, fetching nothing from another host (served before the assets' mount)."""
    return Response(
        redoc_bundle(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
