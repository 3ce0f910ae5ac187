"""The web app and the offline API docs, served by the API process itself.

:func:`install_web` adds to an app:

* ``/app/…`` — the pages (:mod:`api.web.pages`) and their static files
  (``/app/static``: one stylesheet, plain ES modules, no build step);
* ``/docs`` and ``/redoc`` from local files (:mod:`api.web.docs`), with the
  bundles under ``/docs-assets``;
* ``/`` — a redirect to the app.

Nothing here reads tenant data: the pages call the same ``/v1`` API as any
client, with the key the user signs in with.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.web import docs, pages

__all__ = ["install_web"]


def install_web(app: FastAPI) -> None:
    """Mount the app's pages, its static files and the local API docs on ``app``.

    ``app`` must be built with ``docs_url=None, redoc_url=None`` so that
    FastAPI's CDN pages do not take the same addresses.
    """
    # Order matters: the docs' routes before the assets' mount (ReDoc's bundle is served
    # by a route), and the static files before the pages' catch-all.
    app.include_router(docs.router)
    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.assets_dir()), name="docs-assets")
    app.mount(
        f"{pages.PREFIX}/static",
        StaticFiles(directory=pages.HERE / "static"),
        name="web-static",
    )
    app.include_router(pages.router)

    @app.get("/", include_in_schema=False, response_class=RedirectResponse, response_model=None)
    def front(request: Request) -> RedirectResponse:
        """The server's root: the web app."""
        return RedirectResponse(f"{pages.root_of(request)}{pages.PREFIX}/", status_code=303)
