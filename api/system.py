"""Probes: ``/healthz`` (alive), ``/readyz`` (dependencies reachable), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Ctx
from api.probes import readiness
from api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness")
def healthz() -> HealthOut:
    """The process is up and serving; checks nothing else."""
    return HealthOut()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness",
    responses={503: {"model": ReadyOut, "description": "something is down; `down` names it"}},
)
def readyz(ctx: Ctx, response: Response) -> ReadyOut:
    """Redis, the broker and the storage bucket are reachable; 503 naming what is not."""
    ready = readiness(ctx)
    if ready.down:
        response.status_code = 503
    return ready


@router.get(
    "/metrics",
    response_class=Response,
    response_model=None,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "text format"}},
)
async def metrics(request: Request) -> Response:
    """Jobs by status, queue depth, provider sessions in use, job durations."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
