"""Routes of the labeling API: ``/v1/annotate/…`` for annotators, ``/v1/projects/{pid}/labeling/…`` for owners.

A thin adapter over :class:`alloop.labeling.web.LabelingService`. Authentication happens in
:mod:`._guard` before a body is read: annotator routes get ``state["project"]`` and ``state["annotator"]``
from an annotator token, owner routes need the project key (or the admin token).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from alloop.labeling.web import LabelingService

__all__ = ["annotate_router", "owner_router", "register_routes"]

Id = int | str
PID = Annotated[str, Path(pattern=r"^p_[0-9a-f]{16}$", description="project id")]
TaskId = Annotated[int, Path(ge=1, le=2**62, description="task id from /v1/annotate/next")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitIn(_Body):
    label: Id
    seconds: float | None = Field(None, ge=0, le=86400 * 7)


class TokenIn(_Body):
    annotator: str = Field(min_length=1, max_length=128)
    skills: list[str] = Field(default_factory=list, max_length=100)
    capacity: int = Field(1, ge=1, le=1000)
    quota: int | None = Field(None, ge=0)


class TasksIn(_Body):
    ids: list[Id] = Field(min_length=1, max_length=100_000)
    payload: list[Any] | None = Field(None, max_length=100_000)
    predicted: list[Id | None] | None = Field(None, max_length=100_000)
    required: int = Field(1, ge=1, le=100)
    priority: list[float] | float = 0.0


class IdsIn(_Body):
    ids: list[Id] = Field(min_length=1, max_length=100_000)


class ConfigIn(_Body):
    lease_seconds: float | None = Field(None, ge=1, le=86400)
    preannotate: bool | None = None


class PathIn(_Body):
    path: str = Field(max_length=4096, description="a directory on the server's machine ('' unregisters)")


class MetricsIn(_Body):
    loop: int = Field(ge=0, le=10**9)
    values: dict[str, float] = Field(max_length=100)


def _who(request: Request) -> tuple[str, str]:
    state = request.scope["state"]
    return str(state["project"]), str(state["annotator"])


def annotate_router(labeling: LabelingService) -> APIRouter:
    """Routes for annotators (annotator token): who am I, heartbeat, next task, submit, skip, progress."""
    r = APIRouter(prefix="/v1/annotate", tags=["annotate"])

    @r.get("/me")
    def me(request: Request) -> dict[str, Any]:
        return labeling.me(*_who(request))

    @r.post("/heartbeat")
    def heartbeat(request: Request) -> dict[str, Any]:
        return labeling.heartbeat(*_who(request))

    @r.post("/signout")
    def signout(request: Request) -> dict[str, str]:
        labeling.sign_out(*_who(request))
        return {"status": "offline"}

    @r.post("/next")
    def next_task(request: Request) -> dict[str, Any]:
        """The current lease or a new one; ``task`` is null when there is no work for you now."""
        pid, annotator = _who(request)
        task = labeling.next_task(pid, annotator)
        return {"task": task, "progress": labeling.progress(pid, annotator)}

    @r.get("/progress")
    def progress(request: Request) -> dict[str, Any]:
        return labeling.progress(*_who(request))

    @r.post("/tasks/{task_id}/submit")
    def submit(request: Request, task_id: TaskId, body: SubmitIn) -> dict[str, Any]:
        pid, annotator = _who(request)
        return labeling.submit(pid, annotator, task_id, body.label, seconds=body.seconds)

    @r.post("/tasks/{task_id}/skip")
    def skip(request: Request, task_id: TaskId) -> dict[str, Any]:
        pid, annotator = _who(request)
        return labeling.skip(pid, annotator, task_id)

    @r.get("/tasks/{task_id}/content", response_class=Response)
    def content(request: Request, task_id: TaskId) -> Response:
        pid, annotator = _who(request)
        data, media_type = labeling.task_content(pid, annotator, task_id)
        return Response(data, media_type=media_type, headers={"cache-control": "no-store"})

    return r


def owner_router(labeling: LabelingService) -> APIRouter:
    """Routes for the project owner (project key): tokens, tasks, content, settings, results, metrics."""
    r = APIRouter(prefix="/v1/projects/{pid}/labeling", tags=["labeling"])

    @r.post("/annotators", status_code=201)
    def issue(pid: PID, body: TokenIn) -> dict[str, str]:
        token = labeling.issue_token(pid, body.annotator, skills=body.skills, capacity=body.capacity, quota=body.quota)
        return {"annotator": body.annotator, "token": token}

    @r.post("/annotators/{annotator}/revoke")
    def revoke(pid: PID, annotator: Annotated[str, Path(max_length=128)]) -> dict[str, int]:
        return {"revoked": labeling.revoke(pid, annotator)}

    @r.post("/tasks", status_code=201)
    def add_tasks(pid: PID, body: TasksIn) -> dict[str, list[int]]:
        ids = labeling.add_tasks(
            pid, body.ids, payload=body.payload, predicted=body.predicted, required=body.required,
            priority=body.priority,
        )
        return {"task_ids": ids}

    @r.post("/tasks/cancel")
    def cancel(pid: PID, body: IdsIn) -> dict[str, int]:
        return {"cancelled": labeling.cancel(pid, body.ids)}

    @r.put(
        "/content/{rid}",
        openapi_extra={
            "requestBody": {
                "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/png", "image/jpeg")},
                "required": True,
            }
        },
    )
    async def put_content(request: Request, pid: PID, rid: Annotated[str, Path(max_length=512)]) -> dict[str, str]:
        """The PNG/JPEG of record ``rid`` (add ``?kind=int`` when record ids are integers)."""
        body = await request.body()
        key: Id = int(rid) if request.query_params.get("kind") == "int" else rid
        return {"media_type": labeling.put_content(pid, key, body)}

    @r.get("/config")
    def get_config(pid: PID) -> dict[str, Any]:
        return labeling.settings(pid)

    @r.post("/config")
    def configure(pid: PID, body: ConfigIn) -> dict[str, Any]:
        return labeling.configure(pid, lease_seconds=body.lease_seconds, preannotate=body.preannotate)

    @r.post("/results")
    def results(pid: PID) -> list[dict[str, Any]]:
        """Consensus labels of finished tasks not fetched before (each is returned once)."""
        return labeling.results(pid)

    @r.post("/metrics")
    def metrics(pid: PID, body: MetricsIn) -> dict[str, str]:
        labeling.report_metrics(pid, body.loop, body.values)
        return {"status": "stored"}

    @r.post("/folder")
    def folder(pid: PID, body: PathIn) -> dict[str, Any]:
        """Serve this project's images from a server directory: ``<record id>.png|.jpg|.jpeg`` directly inside it."""
        return labeling.register_folder(pid, body.path)

    @r.post("/campaign")
    def campaign(pid: PID, body: PathIn) -> dict[str, Any]:
        """Show a campaign directory (its ``alloop.db``) on this project's dashboard: curve, sources, compute."""
        return labeling.attach_campaign(pid, body.path)

    @r.get("/overview")
    def overview(pid: PID) -> dict[str, Any] | None:
        return labeling.overview(pid)

    return r


def register_routes(app: Any, service: Any, settings: Any) -> LabelingService:
    """WIRING FOR THE LEAD: call from ``create_app`` and pass the result's ``annotator_for_token`` to ``Guard``.

    Adds the labeling API, ``/label``, the dashboard ``/`` and their static files to ``app``.
    """
    from alloop.server._pages import pages_router

    labeling = LabelingService(service=service, file_roots=tuple(getattr(settings, "file_roots", ())))
    app.include_router(annotate_router(labeling))
    app.include_router(owner_router(labeling))
    app.include_router(pages_router(service, labeling, settings))
    app.state.labeling = labeling
    return labeling
