"""Serving interactive prompts while the reader waits (issue 17 item 3).

The web process queues one task per prompt on the ``interactive`` queue and waits a short while for the answer
on a Redis list (the broker's Redis: Celery's result backend is off in this project, and a list read with BLPOP
wakes the moment the worker pushes). A worker of that queue keeps its engines warm and a prompt context per
(reader, series): the series volume, loaded once from the image store and kept in the worker's memory (an LRU of
a few volumes), not in Redis. A volume is megabytes to hundreds of megabytes of float32; shipping it through
Redis on every prompt would cost more than the engine itself, while the worker that already holds it answers in
tens of milliseconds. The same cache serves the web process when it answers itself.

When no worker answers in time (none running, or busy), or the broker is not Redis (the embedded default), the web
process answers with the model-free engine itself and the response says so; the queued task carries an expiry so
that a late worker drops it rather than computing an answer nobody waits for.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from celery import shared_task
from django.conf import settings
from django.utils.translation import gettext as _

from annotation.labels import decode_mask, encode_mask_rle
from annotation.models import Case
from config.errors import ApplicationError
from inference.interactive import modelfree
from inference.interactive.base import (
    InteractiveEngine,
    Prompt,
    PromptRequest,
    Proposal,
    engine_named,
    engine_names,
)
from inference.interactive.names import ENGINE_PREFIX, engine_name, project_engine_names
from inference.volumes import Volume, case_series, load_volume

QUEUE = "interactive"
TASK_NAME = "inference.interactive.propose"
_CONTEXTS_KEPT = 4
_REPLY_TTL_SECONDS = 60


@dataclass
class PromptContext:
    """What one reader's prompts on one series reuse: the volume (and anything an engine precomputes)."""

    volume: Volume
    cache: dict[str, Any]
    last_used: float


_contexts: OrderedDict[tuple[int, str], PromptContext] = OrderedDict()
_contexts_lock = threading.Lock()
# Engines are built once per process and kept: a learned engine's network stays loaded (on the GPU when there is
# one) between prompts. A factory that registers a new model version under the same name must be forgotten first.
_engines: dict[str, InteractiveEngine] = {}


def warm_engine(name: str) -> InteractiveEngine:
    with _contexts_lock:
        engine = _engines.get(name)
        if engine is None:
            if name.startswith(ENGINE_PREFIX) and name not in engine_names():
                from inference.interactive import learned  # torch: only where an engine runs

                learned.register_versions()  # a version trained in another process since this one started
            engine = _engines[name] = engine_named(name)
        return engine


def engine_for_case(case: Case, requested: str | None) -> str:
    """The engine a prompt on ``case`` runs: the one asked for, else the project's active learned interactive model,
    else the model-free engine. A learned engine is the case's own project's: another project's model was trained on
    labels this reader has no access to, so its name is refused like an unknown one."""
    from inference import registry
    from inference.models import TaskType

    own = set(project_engine_names(case.project_id))
    known = sorted({name for name in engine_names() if not name.startswith(ENGINE_PREFIX)} | own)
    if requested is None:
        active = registry.active_version(case.project, TaskType.INTERACTIVE)
        return engine_name(active) if active is not None else modelfree.NAME
    if requested not in known:
        raise ApplicationError(
            _("engine: unknown engine %(name)s (known: %(known)s)")
            % {"name": repr(requested), "known": ", ".join(known)}
        )
    return requested


def project_window(case: Case) -> tuple[float, float] | None:
    """The HU window the project's viewer settings give AI assistance (``viewer.ai_window`` of its current label
    schema), or None: the engine then estimates one around the seeds."""
    from annotation.models import LabelSchema

    schema = LabelSchema.objects.filter(project_id=case.project_id).order_by("-version").only("definition").first()
    viewer = (schema.definition or {}).get("viewer") if schema is not None else None
    window = viewer.get("ai_window") if isinstance(viewer, dict) else None
    if not isinstance(window, dict):
        return None
    return (float(window["lower"]), float(window["upper"]))


def prompt_context(case: Case, reader_id: int) -> tuple[PromptContext, bool]:
    """The (reader, series) context, loading the volume on the first prompt (the least recently used context goes
    first), and whether it was already there (warm)."""
    series_uid = case_series(case).series_instance_uid
    key = (reader_id, series_uid)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is not None:
            _contexts.move_to_end(key)
            context.last_used = time.monotonic()
            return context, True
    context = PromptContext(volume=load_volume(case), cache={}, last_used=time.monotonic())
    with _contexts_lock:
        _contexts[key] = context
        while len(_contexts) > _CONTEXTS_KEPT:
            _contexts.popitem(last=False)
    return context, False


def forget_contexts() -> None:
    """Drop every prompt context and warm engine (tests; a new model version promoted under an engine's name)."""
    with _contexts_lock:
        _contexts.clear()
        _engines.clear()


class InteractiveUnavailableError(ApplicationError):
    status_code = 503
    code = "interactive_unavailable"


def prompts_from_json(raw: list[dict[str, Any]]) -> list[Prompt]:
    """Prompts as the API validated them: {kind, points: [[z, y, x], ...], positive}."""
    return [
        Prompt(
            kind=p["kind"],
            points=tuple((int(v[0]), int(v[1]), int(v[2])) for v in p["points"]),
            positive=bool(p.get("positive", True)),
        )
        for p in raw
    ]


def run_engine(
    *,
    case: Case,
    reader_id: int,
    engine: str,
    prompts: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    window: tuple[float, float] | None,
) -> dict[str, Any]:
    """One prompt through an engine, in this process: the answer as the API returns it (the mask run-length coded)."""
    started = time.perf_counter()
    context, warm = prompt_context(case, reader_id)
    volume = context.volume
    previous_mask = None
    if previous is not None:
        previous_mask = decode_mask(previous, "previous").astype(bool)
        if previous_mask.shape != volume.array.shape:
            raise ApplicationError(
                _("previous: the mask is %(got)s but the series is %(expected)s (slices x rows x columns)")
                % {"got": "x".join(map(str, previous_mask.shape)), "expected": "x".join(map(str, volume.array.shape))}
            )
    request = PromptRequest(
        volume=volume.array,
        spacing=volume.spacing,
        prompts=prompts_from_json(prompts),
        previous=previous_mask,
        window=window,
        cache=context.cache,
    )
    proposal: Proposal = warm_engine(engine).propose(request)
    return {
        "mask": encode_mask_rle(proposal.mask.astype(np.uint8)),
        "engine": proposal.engine,
        "model_version": proposal.model_version,
        "prompts": len(prompts),
        "voxels": int(proposal.mask.sum()),
        "seconds": round(time.perf_counter() - started, 4),
        "warm": warm,
        "window": list(window) if window is not None else None,
    }


@shared_task(name=TASK_NAME, ignore_result=True, acks_late=False)
def propose_task(
    reply_key: str,
    case_id: int,
    reader_id: int,
    engine: str,
    prompts: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    window: list[float] | None,
) -> None:
    """The worker's side: answer one prompt onto the reply list (an error is an answer too, so the web stops
    waiting at once). Not retried: a prompt is worth answering only while the reader waits."""
    try:
        case = Case.objects.select_related("study", "series").get(pk=case_id)
        answer: dict[str, Any] = run_engine(
            case=case,
            reader_id=reader_id,
            engine=engine,
            prompts=prompts,
            previous=previous,
            window=(float(window[0]), float(window[1])) if window else None,
        )
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    client = _redis()
    if client is None:
        return
    client.rpush(reply_key, json.dumps(answer))
    client.expire(reply_key, _REPLY_TTL_SECONDS)


def _redis() -> Any:
    """A client of the broker's Redis, or None when the broker is something else (the embedded default)."""
    url = str(settings.CELERY_BROKER_URL)
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=settings.INTERACTIVE_TIMEOUT_SECONDS + 2)


def propose(
    *,
    case: Case,
    reader_id: int,
    engine: str,
    prompts: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    window: tuple[float, float] | None,
) -> dict[str, Any]:
    """Ask an ``interactive`` worker; if none answers within the timeout, answer with the model-free engine here.

    The answer says which engine ran, whether it was the fallback and why (in the reader's language)."""
    started = time.perf_counter()
    timeout = float(settings.INTERACTIVE_TIMEOUT_SECONDS)
    client = _redis()
    reason: str | None = None
    if client is None:
        reason = _("No interactive worker is configured (the task broker is not Redis).")
    else:
        reply_key = f"medlabel:interactive:reply:{uuid.uuid4().hex}"
        try:
            propose_task.apply_async(
                args=(reply_key, case.pk, reader_id, engine, prompts, previous, list(window) if window else None),
                queue=QUEUE,
                expires=timeout,
            )
            popped = client.blpop([reply_key], timeout=timeout)
        except Exception as exc:
            popped = None
            reason = _("The task broker could not be reached (%(error)s).") % {"error": type(exc).__name__}
        if popped is not None:
            answer = json.loads(popped[1])
            if "error" not in answer:
                answer.update(fallback=False, message=None, seconds=round(time.perf_counter() - started, 4))
                return answer
            reason = _("The interactive worker failed: %(error)s") % {"error": answer["error"]}
        elif reason is None:
            reason = _("No interactive worker answered within %(seconds)s s.") % {"seconds": f"{timeout:g}"}
    try:
        answer = run_engine(
            case=case, reader_id=reader_id, engine=modelfree.NAME, prompts=prompts, previous=previous, window=window
        )
    except ApplicationError:
        raise
    except Exception as exc:
        raise InteractiveUnavailableError(
            _("AI assistance is unavailable right now: %(reason)s Draw the region with the brush.") % {"reason": reason}
        ) from exc
    answer.update(
        fallback=True,
        message=_("%(reason)s The model-free engine answered instead.") % {"reason": reason},
        seconds=round(time.perf_counter() - started, 4),
    )
    return answer
