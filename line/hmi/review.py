"""The QA face of the HMI: the review queue, review metrics, export/import of the reviewed set,
shadow candidates, promotion and rollback (line/flywheel/; docs/quality-loop.md).

Reading (queue, pictures, metrics, shadow report) needs a logged-in user; everything that
changes the record or the line (a review, an import, a candidate, a promotion, a rollback)
needs the ``qa`` or ``admin`` role: an operator runs the line, QA decides what is a defect and
which model decides. Every such change is written with the user's name and time.
"""


import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from line.errors import ConfigError
from line.flywheel.exchange import export_zip, import_label_studio, import_yolo
from line.flywheel.service import Flywheel
from line.hmi.auth import User
from line.hmi.state import HmiContext

STATIC = Path(__file__).parent / "static"
REVIEWER_ROLES = frozenset({"qa", "admin"})
_IMAGE = re.compile(r"^[A-Za-z0-9_.-]+\.png$")
MAX_IMPORT_BYTES = 64 << 20


class Box(BaseModel):
    model_config = {"extra": "forbid"}
    class_: str = Field(alias="class", min_length=1, max_length=64)
    box: tuple[float, float, float, float]


class ReviewBody(BaseModel):
    decision: Literal["confirm", "false", "missed", "good"]
    boxes: list[Box] = Field(default_factory=list, max_length=100)


class CandidateBody(BaseModel):
    recipe_id: str = Field(min_length=1, max_length=128)
    onnx: str = Field(min_length=1, max_length=4096)  # a path on the station (the model is copied there first)
    thresholds: dict[str, float] | None = None
    golden: str | None = Field(default=None, max_length=4096)  # a labelled folder on the station (YOLO layout)


class RecipeBody(BaseModel):
    recipe_id: str = Field(min_length=1, max_length=128)


def review_router(ctx: HmiContext, current_user: Callable[..., User]) -> APIRouter:
    router = APIRouter(tags=["quality"])

    def reviewer(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in REVIEWER_ROLES:
            raise HTTPException(403, f"user {user.name} ({user.role}) may not do this; qa or admin needed")
        return user

    def flywheel() -> Flywheel:
        if ctx.flywheel is None:
            raise HTTPException(404, "the quality loop is not enabled on this station")
        return ctx.flywheel

    Viewer = Annotated[User, Depends(current_user)]
    Reviewer = Annotated[User, Depends(reviewer)]
    Fly = Annotated[Flywheel, Depends(flywheel)]

    @router.get("/review", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "review.html", headers={"Cache-Control": "no-store"})

    @router.get("/api/review/queue")
    def queue(user: Viewer, fly: Fly, recipe_id: str | None = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:  # fmt: skip
        """Unreviewed captures, oldest first, and the user's right to review them."""
        items = [c.public() for c in fly.store.captures(recipe_id=recipe_id, unreviewed=True, limit=limit)]
        return {"items": items, "can_review": user.role in REVIEWER_ROLES, "store": fly.store.count()}

    @router.get("/api/review/reviewed")
    def reviewed(user: Viewer, fly: Fly, recipe_id: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:  # fmt: skip
        return [c.public() for c in fly.store.captures(recipe_id=recipe_id, reviewed=True, limit=limit)]

    @router.get("/api/review/captures/{capture_id}")
    def capture(capture_id: int, user: Viewer, fly: Fly) -> dict[str, Any]:
        found = fly.store.capture(capture_id)
        if found is None:
            raise HTTPException(404, f"no capture {capture_id}")
        return {**found.public(), "history": fly.store.review_history(capture_id)}

    @router.get("/api/review/images/{name}", responses={200: {"content": {"image/png": {}}}})
    def image(name: str, user: Viewer, fly: Fly) -> FileResponse:
        if not _IMAGE.match(name):
            raise HTTPException(400, "invalid image name")
        path = fly.store.images / name
        if not path.is_file():
            raise HTTPException(404, "no such image")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @router.post("/api/review/captures/{capture_id}")
    def review(capture_id: int, body: ReviewBody, user: Reviewer, fly: Fly) -> dict[str, Any]:
        """confirm (the reject is right), false (the reject is wrong), good (the pass is right),
        missed (a defect the model did not report: ``boxes`` in frame pixels, with a class)."""
        found = fly.store.capture(capture_id)
        if found is None:
            raise HTTPException(404, f"no capture {capture_id}")
        classes = list(found.provenance.get("classes", []))
        boxes: list[dict[str, Any]] = [{"class": b.class_, "box": list(b.box)} for b in body.boxes]
        bad = [b.class_ for b in body.boxes if classes and b.class_ not in classes]
        if bad:
            raise HTTPException(422, f"unknown class(es) {bad}; classes are {classes}")
        if body.decision == "missed" and not boxes:
            raise HTTPException(422, "a missed defect needs at least one box with its class")
        if any(not (0 <= x1 < x2 <= found.width and 0 <= y1 < y2 <= found.height) for x1, y1, x2, y2 in (b.box for b in body.boxes)):
            raise HTTPException(422, f"boxes must lie inside the {found.width}x{found.height} frame with x1 < x2, y1 < y2")
        fly.store.add_review(capture_id, user.name, body.decision, boxes)
        ctx.station.result_log.event("capture_review", "info", f"capture {capture_id}: {body.decision} by {user.name}",
                                     {"capture_id": capture_id, "decision": body.decision, "user": user.name, "boxes": len(boxes)})  # fmt: skip
        return {"ok": True, "capture_id": capture_id, "decision": body.decision, "user": user.name}

    @router.get("/api/review/summary")
    def summary(user: Viewer, fly: Fly, recipe_id: str | None = None) -> dict[str, Any]:
        """False-reject rate, escapes per class and threshold curves, from the reviews alone."""
        return fly.summary(recipe_id)

    @router.get("/api/review/export", responses={200: {"content": {"application/zip": {}}}})
    def export(user: Viewer, fly: Fly, recipe_id: str) -> Response:
        recipe = ctx.station.book.recipes.get(recipe_id)
        if recipe is None:
            raise HTTPException(404, f"unknown recipe {recipe_id!r}")
        data = export_zip(fly.store, fly.store.captures(recipe_id=recipe_id, reviewed=True, limit=1_000_000), list(recipe.classes))
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{recipe_id}-reviewed.zip"'})  # fmt: skip

    @router.post("/api/review/import")
    async def import_labels(request: Request, user: Reviewer, fly: Fly, recipe_id: str,
                            format: Literal["label_studio", "yolo"] = "label_studio") -> dict[str, Any]:  # noqa: A002
        """Label Studio's JSON export of the exported tasks, or (``format=yolo``) a zip with the
        exported ``labels/*.txt`` corrected; all of it or nothing is taken."""
        recipe = ctx.station.book.recipes.get(recipe_id)
        if recipe is None:
            raise HTTPException(404, f"unknown recipe {recipe_id!r}")
        data = await request.body()
        if len(data) > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"import is over {MAX_IMPORT_BYTES >> 20} MiB")
        try:
            reader = import_yolo if format == "yolo" else import_label_studio
            result = reader(fly.store, data, user.name, list(recipe.classes))
        except ConfigError as exc:
            raise HTTPException(422, [str(p) for p in exc.problems]) from None
        ctx.station.result_log.event("labels_import", "info", f"{result['imported']} capture labels imported by {user.name}",
                                     {"recipe": recipe_id, "user": user.name, **result})  # fmt: skip
        return result

    # --- shadow, promotion -------------------------------------------------------------------
    @router.post("/api/shadow/candidate")
    def candidate(body: CandidateBody, user: Reviewer, fly: Fly) -> dict[str, Any]:
        try:
            golden = Path(body.golden) if body.golden else None
            return fly.register_candidate(body.recipe_id, Path(body.onnx), body.thresholds, user.name, golden)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except Exception as exc:  # the engine could not load the model: the user's input
            raise HTTPException(422, f"candidate cannot be loaded: {type(exc).__name__}: {exc}") from None

    @router.post("/api/shadow/stop")
    def stop(body: RecipeBody, user: Reviewer, fly: Fly) -> dict[str, Any]:
        return {"stopped": fly.stop_shadow(body.recipe_id)}

    @router.get("/api/shadow")
    def shadows(user: Viewer, fly: Fly) -> dict[str, Any]:
        return {"shadows": sorted(fly.shadows), "active": ctx.station.book.active.recipe.id if ctx.station.book.active else None,
                "can_promote": user.role in REVIEWER_ROLES,
                "rollback": {rid: fly.promoter.can_rollback(rid) for rid in ctx.station.book.recipes}}  # fmt: skip

    @router.get("/api/shadow/{recipe_id}")
    def report(recipe_id: str, user: Viewer, fly: Fly) -> dict[str, Any]:
        found = fly.shadow_report(recipe_id)
        if found is None:
            raise HTTPException(404, f"no candidate in shadow for {recipe_id!r}")
        return {**found, "promotions": fly.store.promotions(recipe_id)}

    @router.post("/api/shadow/promote")
    def promote(body: RecipeBody, user: Reviewer, fly: Fly) -> Response:
        result = fly.promote(body.recipe_id, user.name)
        return _reply(result.ok, {"ok": result.ok, "recipe_id": result.recipe_id, "message": result.message, "model": result.model})

    @router.post("/api/shadow/rollback")
    def rollback(body: RecipeBody, user: Reviewer, fly: Fly) -> Response:
        result = fly.rollback(body.recipe_id, user.name)
        return _reply(result.ok, {"ok": result.ok, "recipe_id": result.recipe_id, "message": result.message, "model": result.model})

    return router


def _reply(ok: bool, body: dict[str, Any]) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse(body, status_code=200 if ok else 409)
