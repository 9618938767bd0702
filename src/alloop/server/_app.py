"""The FastAPI app: a thin typed adapter over :class:`alloop.engine.service.EngineService`.

Routes translate HTTP into library calls and back; errors from the library map to status codes through
:data:`alloop.errors.HTTP_STATUS`. Authentication and body limits run first, in :mod:`._guard`.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

import alloop
from alloop.engine.service import EngineService, read_arrow_ipc
from alloop.errors import HTTP_STATUS, AlloopError, DataError
from alloop.server._guard import Guard
from alloop.settings import Settings

ARROW = "application/vnd.apache.arrow.stream"
Id = int | str
PID = Annotated[str, Path(pattern=r"^p_[0-9a-f]{16}$", description="project id")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectIn(_Body):
    name: str = Field(min_length=1, max_length=200)
    classes: list[Id] = Field(min_length=2, max_length=100_000)
    strategy: str = Field("auto", max_length=1000)
    seed: int = Field(0, ge=0)


class ProjectOut(BaseModel):
    project_id: str
    api_key: str = Field(description="shown once; only its hash is stored")


class IdsIn(_Body):
    ids: list[Id] = Field(max_length=5_000_000)


class LabelsIn(_Body):
    ids: list[Id] = Field(max_length=1_000_000)
    labels: list[Id] = Field(max_length=1_000_000)


class CommitIn(_Body):
    n_chunks: int = Field(ge=1, le=100_000)


class DynamicsIn(_Body):
    ids: list[Id] = Field(default_factory=list, max_length=1_000_000)
    p_true: list[list[float | None]] = Field(default_factory=list, max_length=1_000_000)
    correct: list[list[bool]] | None = None
    holdout: float | None = None


class RecommendIn(_Body):
    k: int = Field(ge=1, le=1_000_000)
    strategy: str | None = Field(None, max_length=1000)
    loop: int | None = Field(None, ge=0)
    time_budget: float | None = Field(None, gt=0)


class SelectionOut(BaseModel):
    ids: list[Id]
    scores: list[float | None]
    strategy: str
    reason: str
    loop: int


def _status_for(exc: AlloopError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]
    return 500


def _ids_from_body(body: bytes, content_type: str) -> Any:
    if content_type.startswith(ARROW):
        table = read_arrow_ipc(body, "the record ids")
        if "id" not in table.column_names:
            raise DataError(f"The Arrow body has no 'id' column; columns are {table.column_names}.")
        return table.column("id").to_numpy(zero_copy_only=False)
    import json

    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise DataError("The body must be JSON {'ids': [...]} or an Arrow IPC stream with an 'id' column.") from None
    return IdsIn.model_validate(payload).ids


def create_app(service: EngineService, settings: Settings) -> Any:
    """The ASGI application (FastAPI wrapped in the auth/body-limit guard)."""
    app = FastAPI(
        title="alloop engine",
        version=alloop.__version__,
        description="The alloop selection engine as a service. Every /v1 route needs 'Authorization: Bearer <key>'.",
    )
    counts: Counter[tuple[str, int]] = Counter()
    timings: dict[str, list[float]] = {"recommend": [0.0, 0.0]}

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        route = request.scope.get("route")
        counts[(getattr(route, "path", "unmatched"), response.status_code)] += 1
        return response

    @app.exception_handler(AlloopError)
    async def alloop_error(_: Request, exc: AlloopError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=_status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(problems), "error": "ValidationError"}, status_code=422)

    def project(request: Request, pid: str) -> str:
        service.config(pid)  # 404 for an unknown project (admin may name any)
        return pid

    # ---- health -----------------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        ok, why = service.ready()
        return JSONResponse({"status": "ready" if ok else "not ready", "detail": why}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> str:
        lines = ["# TYPE alloop_requests_total counter"]
        for (path, status), n in sorted(counts.items()):
            lines.append(f'alloop_requests_total{{path="{path}",status="{status}"}} {n}')
        lines += [
            "# TYPE alloop_projects gauge",
            f"alloop_projects {len(service.projects())}",
            "# TYPE alloop_recommend_seconds summary",
            f"alloop_recommend_seconds_sum {timings['recommend'][0]:.6f}",
            f"alloop_recommend_seconds_count {int(timings['recommend'][1])}",
        ]
        return "\n".join(lines) + "\n"

    # ---- projects (admin) -------------------------------------------------------------------------
    @app.post("/v1/projects", response_model=ProjectOut, status_code=201, tags=["projects"])
    def create_project(body: ProjectIn) -> ProjectOut:
        pid, key = service.create_project(name=body.name, classes=body.classes, strategy=body.strategy, seed=body.seed)
        return ProjectOut(project_id=pid, api_key=key)

    @app.get("/v1/projects", tags=["projects"])
    def list_projects() -> list[dict[str, Any]]:
        return service.projects()

    @app.get("/v1/projects/{pid}", tags=["projects"])
    def project_status(request: Request, pid: PID) -> dict[str, Any]:
        return service.status(project(request, pid))

    @app.get("/v1/projects/{pid}/history", tags=["projects"])
    def project_history(request: Request, pid: PID) -> list[dict[str, Any]]:
        return service.history(project(request, pid))

    # ---- pool ---------------------------------------------------------------------------------------
    ids_body = {
        "requestBody": {
            "content": {
                "application/json": {"schema": IdsIn.model_json_schema()},
                ARROW: {"schema": {"type": "string", "format": "binary"}},
            },
            "required": True,
        }
    }

    @app.post("/v1/projects/{pid}/records", tags=["pool"], openapi_extra=ids_body)
    async def add_records(request: Request, pid: PID) -> dict[str, int]:
        body = await request.body()
        ids = _ids_from_body(body, request.headers.get("content-type", ""))
        return {"added": await run_in_threadpool(service.add_records, project(request, pid), ids)}

    @app.post("/v1/projects/{pid}/records/remove", tags=["pool"])
    def remove_records(request: Request, pid: PID, body: IdsIn) -> dict[str, int]:
        return {"removed": service.remove_records(project(request, pid), body.ids)}

    # ---- snapshots ----------------------------------------------------------------------------------
    @app.put(
        "/v1/projects/{pid}/loops/{loop}/snapshot/chunks/{chunk}",
        tags=["snapshots"],
        openapi_extra={
            "requestBody": {"content": {ARROW: {"schema": {"type": "string", "format": "binary"}}}, "required": True}
        },
    )
    async def put_chunk(
        request: Request,
        pid: PID,
        loop: Annotated[int, Path(ge=0, le=10**9)],
        chunk: Annotated[int, Path(ge=0, le=10**6)],
    ) -> dict[str, Any]:
        body = await request.body()
        return await run_in_threadpool(service.put_chunk, project(request, pid), loop, chunk, body)

    @app.post("/v1/projects/{pid}/loops/{loop}/snapshot/commit", tags=["snapshots"])
    def commit_snapshot(
        request: Request, pid: PID, loop: Annotated[int, Path(ge=0, le=10**9)], body: CommitIn
    ) -> dict[str, Any]:
        return service.commit_snapshot(project(request, pid), loop, body.n_chunks)

    # ---- labels and selection -----------------------------------------------------------------------
    @app.post("/v1/projects/{pid}/labels", tags=["labels"])
    def labels(request: Request, pid: PID, body: LabelsIn) -> dict[str, int]:
        return {"labeled": service.observe_labels(project(request, pid), body.ids, body.labels)}

    @app.post("/v1/projects/{pid}/selected", tags=["labels"])
    def selected(request: Request, pid: PID, body: IdsIn) -> dict[str, int]:
        return {"selected": service.mark_selected(project(request, pid), body.ids)}

    @app.post("/v1/projects/{pid}/selected/release", tags=["labels"])
    def release(request: Request, pid: PID, body: IdsIn) -> dict[str, int]:
        return {"released": service.release(project(request, pid), body.ids)}

    @app.post("/v1/projects/{pid}/loops/{loop}/training-dynamics", tags=["labels"])
    def training_dynamics(
        request: Request, pid: PID, loop: Annotated[int, Path(ge=0, le=10**9)], body: DynamicsIn
    ) -> dict[str, int]:
        """What a TRAIN step reported: per-epoch probability of the true label (→ History) and a held-out metric."""
        import numpy as np

        from alloop.records import as_id_array

        pid = project(request, pid)
        folded = 0
        if body.ids:  # kept on disk by the service, so a restart rebuilds the same History
            tp = np.array([[np.nan if v is None else v for v in row] for row in body.p_true], dtype=np.float64)
            correct = None if body.correct is None else np.array(body.correct)
            folded = service.observe_training_dynamics(pid, loop, as_id_array(body.ids), tp, correct)
        if body.holdout is not None:
            with service._lock(pid):  # the engine is shared by the project's requests
                service.engine(pid).observe_holdout(body.holdout, loop=loop)
                service.save_strategy_state(pid)
        return {"folded": folded}

    @app.post("/v1/projects/{pid}/recommend", response_model=SelectionOut, tags=["selection"])
    def recommend(request: Request, pid: PID, body: RecommendIn) -> SelectionOut:
        t0 = time.perf_counter()
        sel = service.recommend(
            project(request, pid), body.k, strategy=body.strategy, loop=body.loop, time_budget=body.time_budget
        )
        timings["recommend"][0] += time.perf_counter() - t0
        timings["recommend"][1] += 1
        return SelectionOut(
            ids=sel.ids.tolist(),
            scores=[None if s != s else float(s) for s in sel.scores.tolist()],
            strategy=sel.strategy,
            reason=sel.reason,
            loop=sel.loop,
        )

    @app.get("/v1/whoami", tags=["projects"])
    def whoami(request: Request) -> dict[str, Any]:
        state = request.scope.get("state", {})
        return {"project_id": state.get("project"), "admin": bool(state.get("admin"))}

    @app.get("/v1/strategies", tags=["selection"])
    def strategies() -> list[dict[str, Any]]:
        from alloop.strategies import all_strategies

        return [
            {"name": n, "family": c.family, "needs": sorted(c.needs), "cost": c.cost, "description": c.describe()}
            for n, c in all_strategies().items()
        ]

    from alloop.server._annotate import register_routes

    labeling = register_routes(app, service, settings)
    return Guard(
        app,  # type: ignore[arg-type]  # FastAPI's ASGI signature uses MutableMapping
        project_for_key=service.project_for_key,
        admin_token=settings.admin_token,
        max_body_bytes=settings.max_body_bytes,
        annotator_for_token=labeling.annotator_for_token,
    ), app
