"""The HMI's FastAPI app: the page (plain HTML/JS/CSS from ``static/``), a REST API described
by OpenAPI (``/openapi.json``, ``/docs``), ``/healthz`` and Prometheus ``/metrics``.

Authentication: a browser logs in (``POST /api/login``) and gets a session cookie; scripts
and the CLI may send HTTP Basic credentials instead. Every ``/api`` route needs a user
(viewer at least); switching recipes and resetting counters need operator or admin.
``/healthz`` and ``/metrics`` are open (probes and Prometheus scrapers; they show no images).
Cookie-authenticated writes also check ``Origin`` against ``Host`` (besides SameSite=Strict).

Paths from requests never reach the filesystem unchecked: images go through
``ImageArchive.resolve`` (which refuses traversal) and recipes are looked up by id in the
book; a recipe's file path comes from the book, never from the request.
"""


import base64
import binascii
import re
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from line.hmi.api_docs import add_api_docs
from line.hmi.auth import SESSION_COOKIE, User
from line.hmi.review import review_router
from line.hmi.state import HmiContext
from line.metrics import CONTENT_TYPE

STATIC = Path(__file__).parent / "static"
_RECIPE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class SwitchRequest(BaseModel):
    recipe_id: str = Field(min_length=1, max_length=128)


class SwitchReply(BaseModel):
    ok: bool
    recipe_id: str
    message: str
    prepare_s: float
    switch_s: float
    warm: bool | None = None


def create_app(ctx: HmiContext) -> FastAPI:
    app = FastAPI(title="linecheck HMI", version="1", description="Inline inspection station: live view, counters, recipes.",
                  docs_url=None, redoc_url=None)  # /docs: served without the internet (api_docs)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_api_docs(app)

    def current_user(request: Request) -> User:
        user = ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
        if user is not None:
            if request.method not in ("GET", "HEAD") and not _same_origin(request):
                raise HTTPException(403, "cross-origin request refused")
            return user
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                name, password = "", ""
            user = ctx.users.authenticate(name, password) if name else None
            if user is not None:
                return user
        # the Basic challenge only for clients that tried Basic: a browser's fetch would pop up a
        # password dialog (and a headless one would hang) instead of showing the login form
        challenge = {"WWW-Authenticate": 'Basic realm="linecheck"'} if header else None
        raise HTTPException(401, "login required", headers=challenge)

    def operator(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.can("operator"):
            raise HTTPException(403, f"user {user.name} ({user.role}) may not do this; operator or admin needed")
        return user

    Viewer = Annotated[User, Depends(current_user)]
    app.include_router(review_router(ctx, current_user))  # QA: captures, reviews, shadow, promotion
    Operator = Annotated[User, Depends(operator)]

    # --- page, probes --------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz", tags=["probes"])
    def healthz() -> JSONResponse:
        """starting | ready | degraded | failed, with reasons; 503 when failed or still starting
        (a readiness probe must not send work to a station whose PLC port is not open yet)."""
        health = ctx.health()
        return JSONResponse(health, status_code=503 if health["status"] in ("failed", "starting") else 200)

    @app.get("/metrics", tags=["probes"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics() -> Response:
        if ctx.metrics is None:
            raise HTTPException(404, "metrics disabled")
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)

    # --- session -------------------------------------------------------------------------
    @app.post("/api/login", tags=["session"])
    def login(body: Login, request: Request) -> JSONResponse:
        user = ctx.users.authenticate(body.username, body.password)
        if user is None:
            raise HTTPException(401, "wrong user name or password")
        token = ctx.sessions.create(user)
        reply = JSONResponse({"user": user.name, "role": user.role})
        reply.set_cookie(SESSION_COOKIE, token, max_age=int(ctx.config.session_ttl_s), httponly=True, samesite="strict",
                         secure=request.url.scheme == "https", path="/")  # fmt: skip
        return reply

    @app.post("/api/logout", tags=["session"])
    def logout(request: Request) -> JSONResponse:
        ctx.sessions.drop(request.cookies.get(SESSION_COOKIE))
        reply = JSONResponse({"ok": True})
        reply.delete_cookie(SESSION_COOKIE, path="/")
        return reply

    @app.get("/api/me", tags=["session"])
    def me(user: Viewer) -> dict[str, str]:
        return {"user": user.name, "role": user.role}

    # --- station -------------------------------------------------------------------------
    @app.get("/api/status", tags=["station"])
    def status(user: Viewer) -> dict[str, Any]:
        return ctx.status()

    @app.get("/api/latency", tags=["station"])
    def latency(user: Viewer) -> dict[str, Any]:
        return ctx.latency_histogram()

    @app.get("/api/events", tags=["station"])
    def events(user: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
        return ctx.events(limit)

    @app.post("/api/counters/reset", tags=["station"])
    def reset_counters(user: Operator) -> dict[str, Any]:
        ctx.station.command(1, f"hmi:{user.name}")
        ctx.counters_reset_ns = time.time_ns()
        return {"ok": True, "reset_by": user.name}

    # --- live view, rejects ----------------------------------------------------------------
    @app.get("/api/live", tags=["live"])
    def live_meta(user: Viewer) -> dict[str, Any]:
        if ctx.live is None:
            return {"cameras": {}, "stats": None}
        cams = {}
        for cam in ctx.live.cameras():
            image = ctx.live.latest(cam)
            if image is not None:
                cams[cam] = image.meta
        return {"cameras": cams, "stats": ctx.live.stats()}

    @app.get("/api/live.jpg", tags=["live"], responses={200: {"content": {"image/jpeg": {}}}, 204: {}})
    def live_jpeg(user: Viewer, camera: str | None = None) -> Response:
        image = ctx.live.latest(camera) if ctx.live is not None else None
        if image is None:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        return Response(image.jpeg, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Live-Seq": str(image.seq)})  # fmt: skip

    @app.get("/api/rejects", tags=["live"])
    def rejects(user: Viewer, limit: Annotated[int, Query(ge=1, le=100)] = 12) -> list[dict[str, Any]]:
        return ctx.rejects(limit)

    @app.get("/api/images/{ref:path}", tags=["live"], responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
    def image(ref: str, user: Viewer) -> FileResponse:
        archive = ctx.station.result_log.archive
        if archive is None:
            raise HTTPException(404, "the NG archive is disabled")
        try:
            path = archive.resolve(ref)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if not path.is_file():
            raise HTTPException(404, "no such image")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    # --- recipes ---------------------------------------------------------------------------
    @app.get("/api/recipes", tags=["recipes"])
    def recipes(user: Viewer) -> dict[str, Any]:
        return ctx.recipes()

    def known_recipe(recipe_id: str) -> str:
        if not _RECIPE_ID.match(recipe_id):
            raise HTTPException(400, f"invalid recipe id {recipe_id!r}")
        if recipe_id not in ctx.station.book.recipes:
            raise HTTPException(404, f"unknown recipe {recipe_id!r}")
        return recipe_id

    @app.get("/api/recipes/{recipe_id:path}/yaml", tags=["recipes"])
    def recipe_yaml(recipe_id: str, user: Viewer) -> Response:
        path = ctx.station.book.files[known_recipe(recipe_id)]  # the book's path, never the request's
        return Response(path.read_text(), media_type="text/plain; charset=utf-8")

    @app.get("/api/recipes/{recipe_id:path}", tags=["recipes"])
    def recipe(recipe_id: str, user: Viewer) -> dict[str, Any]:
        return ctx.station.book.recipes[known_recipe(recipe_id)].model_dump(mode="json")

    @app.post("/api/recipes/switch", tags=["recipes"], response_model=SwitchReply,
              responses={404: {"description": "unknown recipe"}, 409: {"model": SwitchReply, "description": "refused"}})  # fmt: skip
    def switch(body: SwitchRequest, user: Operator, source: Annotated[str, Query(pattern=r"^(hmi|cli)$")] = "hmi") -> JSONResponse:
        """Prepare the recipe fully, then swap between two frames; blocks until done (the page
        shows progress from ``GET /api/recipes`` meanwhile). 409 with the reason if refused."""
        recipe_id = known_recipe(body.recipe_id)
        result = ctx.station.request_switch(recipe_id, source, user.name)
        audit = ctx.station.book.last_audit
        warm = audit.warm if audit is not None and audit.to_id == recipe_id else None
        reply = SwitchReply(ok=result.ok, recipe_id=result.recipe_id, message=result.message,
                            prepare_s=round(audit.prepare_s if audit and warm is not None else result.prepare_s, 4),
                            switch_s=round(result.switch_s, 4), warm=warm)  # fmt: skip
        return JSONResponse(reply.model_dump(), status_code=200 if result.ok else 409)

    @app.get("/login", include_in_schema=False)
    def login_page() -> RedirectResponse:
        return RedirectResponse("/")

    return app


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin:
        return True  # not a browser cross-site form/fetch (those send Origin on POST)
    return urlsplit(origin).netloc == request.headers.get("host", "")
