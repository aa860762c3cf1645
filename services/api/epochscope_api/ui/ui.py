"""Serves the web UI at /ui/ (and redirects / there). Every asset ships in this package: no CDN."""

import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse

STATIC = (Path(__file__).parent / "static").resolve()
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/css", ".css")

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui")
async def ui_without_slash() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/{path:path}")
async def ui_file(path: str) -> FileResponse:
    """A file under static/, or index.html for the app's own routes; nothing outside static/."""
    target = (STATIC / (path or "index.html")).resolve()
    if not target.is_relative_to(STATIC):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="not found")
    if not target.is_file():
        if "." in Path(path).name:  # a missing asset, not an app route
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="not found")
        target = STATIC / "index.html"
    return FileResponse(target, headers={"Cache-Control": "no-cache"})
