"""The HMI's FastAPI app: the page (plain HTML/JS/CSS from ``static/``), a REST API described
by OpenAPI (``/openapi.json``, ``/docs``), ``/healthz`` and Prometheus ``/metrics``.

Authentication: a browser logs in (``POST /api/login``) and gets a session cookie; scripts
and the CLI may send HTTP Basic credentials instead. Every ``/api`` route needs a user
(viewer at least); switching recipes and resetting counters need operator or admin.
``/healthz`` and ``/metrics`` are open (probes and Prometheus scrapers; they show no images).
Cookie-authenticated writes also check ``Origin`` against ``Host`` (besides SameSite=Strict),
and ``Host`` itself must be one of the configured names (``hmi.allowed_hosts``), so a foreign
name that resolves to the station (DNS rebinding) gets 400. Logins (form and Basic) go through
``LoginGuard``: throttled per address and user name, bounded in concurrent work, audited.

Paths from requests never reach the filesystem unchecked: images go through
``ImageArchive.resolve`` (which refuses traversal) and recipes are looked up by id in the
book; a recipe's file path comes from the book, never from the request.
"""


import asyncio
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
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from line.app.config import HmiSection
from line.hmi.api_docs import add_api_docs
from line.hmi.auth import SESSION_COOKIE, User
from line.hmi.metrics import CONTENT_TYPE
from line.hmi.review import review_router
from line.hmi.state import HmiContext
from line.login_guard import LoginRefused, LoginThrottle

STATIC = Path(__file__).parent / "static"
_RECIPE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MAX_IMAGE_REF = 255  # longer than any archive name and than a file name may be (ENAMETOOLONG)
_MAX_USER_NAME = 64
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class ClearLockout(BaseModel):
    key: str | None = Field(default=None, max_length=512, description="addr:<ip> or user:<name>; none: all")


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
    app.add_middleware(ThrottledAddressTarpit, throttle=ctx.guard.throttle, hold_s=ctx.guard.throttle.policy.hold_s)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(ctx.config))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_api_docs(app)

    def check_password(name: str, password: str, request: Request) -> User | None:
        address = request.client.host if request.client else "?"
        try:
            return ctx.guard.authenticate(name, password, address)
        except LoginRefused as exc:
            raise HTTPException(exc.status, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after_s)))}) from None

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
            user = check_password(name, password, request) if 0 < len(name) <= _MAX_USER_NAME else None
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

    def admin(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.can("admin"):
            raise HTTPException(403, f"user {user.name} ({user.role}) may not do this; admin needed")
        return user

    Viewer = Annotated[User, Depends(current_user)]
    app.include_router(review_router(ctx, current_user))  # QA: captures, reviews, shadow, promotion
    Operator = Annotated[User, Depends(operator)]
    Admin = Annotated[User, Depends(admin)]

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
        user = check_password(body.username, body.password, request)
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

    @app.get("/api/admin/logins", tags=["session"])
    def blocked_logins(user: Admin) -> list[dict[str, object]]:
        """Client addresses and user names that may not try to log in now (throttled or locked out)."""
        return ctx.guard.throttle.blocked()

    @app.post("/api/admin/logins/clear", tags=["session"])
    def clear_lockout(body: ClearLockout, request: Request, user: Admin) -> dict[str, object]:
        """Lift the delay/lockout of one key (or of all); audited."""
        cleared = ctx.guard.throttle.clear(body.key)
        ctx.audit("login_lockout_cleared", {"by": user.name, "address": request.client.host if request.client else "?",
                                            "keys": cleared})  # fmt: skip
        return {"cleared": cleared}

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
        if len(ref) > _MAX_IMAGE_REF:
            raise HTTPException(400, f"image name longer than {_MAX_IMAGE_REF} characters")
        archive = ctx.station.result_log.archive
        if archive is None:
            raise HTTPException(404, "the NG archive is disabled")
        try:
            path = archive.resolve(ref)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        try:
            found = path.is_file()
        except OSError:  # e.g. a path component the filesystem refuses
            raise HTTPException(400, "invalid image name") from None
        if not found:
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


class ThrottledAddressTarpit:
    """A login attempt (``/api/login`` or an ``Authorization`` header) from an address that may
    not try now waits, asleep on the event loop, up to ``hold_s`` and then gets 429, before any
    routing or body parsing.

    Why: answering at once still costs the station's process a request's worth of Python per
    guess, and a guessing client sends the next one as soon as it has the answer; eight such
    clients moved the fail-safe share with 429s alone. Held answers slow each of them to one
    guess per ``hold_s`` at the cost of an idle timer (uvicorn's ``limit_concurrency`` caps how
    many connections can be held)."""

    def __init__(self, app: ASGIApp, throttle: LoginThrottle, hold_s: float = 2.0) -> None:
        self.app = app
        self.throttle = throttle
        self.hold_s = hold_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_login_attempt(scope):
            client = scope.get("client")
            wait = self.throttle.wait_s([f"addr:{client[0] if client else '?'}"])
            if wait > 0:
                await asyncio.sleep(min(wait, self.hold_s))
                retry = str(max(1, round(wait)))
                reply = JSONResponse({"detail": "too many failed logins; try again later"}, 429, {"Retry-After": retry})
                await reply(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_login_attempt(scope: Scope) -> bool:
    if scope.get("path") == "/api/login":
        return True
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


def allowed_hosts(config: HmiSection) -> list[str]:
    """The configured names, or loopback names plus the bound address (not a wildcard one)."""
    if config.allowed_hosts:
        return list(config.allowed_hosts)
    bound = [] if config.host in ("0.0.0.0", "::", "") else [config.host]
    return [*LOOPBACK_HOSTS, *bound]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin:
        return True  # not a browser cross-site form/fetch (those send Origin on POST)
    return urlsplit(origin).netloc == request.headers.get("host", "")
