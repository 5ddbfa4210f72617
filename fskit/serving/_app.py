"""The ASGI app (Starlette) of the model server; uvicorn runs it, one instance per worker.

Endpoints (all answers are JSON, errors too: ``{"error": "<what went wrong>", "code": "..."}``)::

    POST /predict                              entity keys (+ request fields) → scores
    GET  /v2                                   Open Inference Protocol v2: server metadata
    GET  /v2/health/live, /v2/health/ready     liveness, readiness (the stable version loaded)
    GET  /v2/models/{name}[/versions/{v}]      model metadata: inputs, outputs, versions
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer  raw feature tensors → probabilities
    GET  /metrics                              Prometheus text format
    GET  /deployment                           deployment state (stable, canary, ...)
    POST /deployment/deploy|promote|rollback   change it (same as fk.serving.deploy, ...)
    GET  /openapi.json                         this API as OpenAPI 3

With a token, every endpoint but ``/v2/health/*`` and ``/openapi.json`` needs
``Authorization: Bearer <token>``.

``/predict`` requests that reach a worker together are scored as one batch (dynamic batching
without a delay window, see :class:`_Batcher`) and answered one by one.

Status codes: 400 malformed JSON or tensors, 401 no/bad token, 404 unknown model, version or
path, 405 wrong method, 409 deployment change refused, 413 too many rows, 422 missing keys or
wrong types, 503 online store down (with ``on_unavailable="error"``) or model not loadable.
500 only for a bug, still as JSON.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import struct
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fskit.errors import FskitError, StoreUnavailableError
from fskit.serving._errors import DeploymentError, RequestError, ServingError, UnknownModelError
from fskit.serving._log import PredictionLog, log_dir
from fskit.serving._metrics import Metrics
from fskit.serving._predictor import Predictor

__all__ = ["ServerOptions", "create_app"]

OPTIONS_ENV = "FSKIT_SERVING_OPTIONS"
MAX_BODY = 32 * 1024 * 1024  # bytes of one request body
TOKEN_ENV = "FSKIT_SERVING_TOKEN"
logger = logging.getLogger("fskit.serving")


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """How a server process serves: passed to each worker as JSON in an environment variable."""

    repo: str
    model: str
    on_unavailable: str = "degrade"
    defaults: dict[str, Any] = field(default_factory=dict)
    batch_scores: str | None = None
    batch_max_age_seconds: float | None = None
    log_predictions: bool = True
    log_flush_rows: int = 5_000
    log_flush_seconds: float = 5.0
    run_dir: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerOptions:
        return cls(**json.loads(text))


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, allow_nan=False, default=str).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json_response({"error": message, "code": code}, status, headers)


class _AuthError(Exception):
    pass


def _server_timing(timings: dict[str, float]) -> str:
    return ", ".join(f"{k};dur={v * 1000:.3f}" for k, v in timings.items())


class _Batcher:
    """Dynamic batching without waiting: the ``/predict`` requests that are in the event loop
    at the same moment are scored together by :meth:`Predictor.predict_many`.

    A handler queues its (checked) payload and awaits a future; the first one in schedules
    :meth:`run` with ``call_soon``, which scores the queue ``TURNS`` loop turns later, once
    every request received meanwhile has queued itself. Alone (light load) a request is
    scored almost at once, as before; under load, the
    requests of one loop turn share one online read and one model call, so the fixed cost of
    each is paid once per batch (the way Triton's dynamic batcher works, with no delay
    window). A request with bad entities fails alone; requests pinning a version or asking
    for features are batched only with their like.
    """

    MAX_ROWS = 1024  # a batch stops growing past this many rows

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.pending: dict[tuple[int | None, bool], list[tuple[Any, str | None, Any]]] = {}
        self.scheduled = False

    def submit(
        self, entities: Any, request_id: str | None, *, version: int | None, return_features: bool
    ) -> Awaitable[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.setdefault((version, return_features), []).append(
            (entities, request_id, future)
        )
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.run)
        return future

    #: Loop turns a batch stays open: the second turn polls the sockets again, so requests
    #: that arrived while the first turn ran join (measured: 1.6 -> 1.8 requests per batch
    #: and ~25% more requests/s under load; a lone request waits one loop turn, microseconds).
    TURNS = 2

    def run(self, turn: int = 1) -> None:
        if turn < self.TURNS:
            asyncio.get_running_loop().call_soon(self.run, turn + 1)
            return
        self.scheduled = False
        pending, self.pending = self.pending, {}
        try:
            for (version, return_features), items in pending.items():
                batch: list[tuple[Any, str | None, Any]] = []
                rows = 0
                for item in items:
                    size = _row_count(item[0])
                    if batch and rows + size > self.MAX_ROWS:
                        self._score(batch, version, return_features)
                        batch, rows = [], 0
                    batch.append(item)
                    rows += size
                self._score(batch, version, return_features)
        except BaseException as exc:  # never leave a request waiting on a future forever
            for items in pending.values():
                for *_, future in items:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    def _score(
        self, batch: list[tuple[Any, str | None, Any]], version: int | None, return_features: bool
    ) -> None:
        live = [item for item in batch if not item[2].done()]  # a client may have gone
        if not live:
            return
        metrics = self.predictor.metrics
        if metrics is not None:
            metrics.inc("fskit_batches_total", model=self.predictor.model)
            metrics.inc("fskit_batched_requests_total", len(live), model=self.predictor.model)
        try:
            results = self.predictor.predict_many(
                [(entities, request_id) for entities, request_id, _ in live],
                version=version,
                return_features=return_features,
            )
        except Exception as exc:  # noqa: BLE001 - one cause for every request of the batch
            for *_, future in live:
                future.set_exception(exc)
            return
        for (*_, future), result in zip(live, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


def _row_count(entities: Any) -> int:
    """How many rows a request's entities hold, roughly (for the batch size cap)."""
    if isinstance(entities, list):
        return len(entities)
    if isinstance(entities, dict):
        first = next(iter(entities.values()), None)
        return len(first) if isinstance(first, list) else 1
    return 1


class _Server:
    """One worker's state: the store, the predictor, metrics and the prediction log."""

    def __init__(self, options: ServerOptions, token: str | None) -> None:
        from fskit.store import FeatureStore

        self.options = options
        self.model = options.model
        self.token = token.encode() if token else None
        self.store = FeatureStore(options.repo)
        run_dir = Path(options.run_dir) if options.run_dir else None
        self.metrics = Metrics(run_dir)
        self.log = (
            PredictionLog(
                log_dir(self.store.repo_path, self.model),
                flush_rows=options.log_flush_rows,
                flush_seconds=options.log_flush_seconds,
            )
            if options.log_predictions
            else None
        )
        max_age = options.batch_max_age_seconds
        self.predictor = Predictor(
            self.store,
            self.model,
            on_unavailable=options.on_unavailable,
            defaults=options.defaults,
            log=self.log,
            metrics=self.metrics,
            batch_scores=options.batch_scores,
            batch_max_age=None if max_age is None else timedelta(seconds=max_age),
        )
        self.batcher = _Batcher(self.predictor)

    # -- plumbing ----------------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), self.token
        ):
            raise _AuthError

    def endpoint(
        self, name: str, handler: Callable[[Request], Awaitable[Response]], *, auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: auth, JSON errors for every exception, HTTP metrics."""

        async def wrapped(request: Request) -> Response:
            try:
                if auth:
                    self.check_auth(request)
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes a JSON answer
                response = self.error_response(exc)
            self.metrics.inc("fskit_http_requests_total", endpoint=name, code=response.status_code)
            return response

        return wrapped

    def error_response(self, exc: BaseException) -> Response:
        if isinstance(exc, _AuthError):
            return _error(
                401,
                "unauthorized",
                "this server needs 'Authorization: Bearer <token>' with the token it was started with",
                {"WWW-Authenticate": "Bearer"},
            )
        if isinstance(exc, RequestError):
            if exc.status != 404:
                self.metrics.inc("fskit_errors_total", model=self.model, version="", kind=exc.code)
            return _error(exc.status, exc.code, str(exc))
        if isinstance(exc, StoreUnavailableError):
            return _error(
                503,
                "store_unavailable",
                f"the online store is unavailable: {exc}",
                {"Retry-After": "1"},
            )
        if isinstance(exc, DeploymentError):
            return _error(409, "deployment_refused", str(exc))
        if isinstance(exc, ServingError):
            return _error(503, "model_unavailable", str(exc), {"Retry-After": "1"})
        if isinstance(exc, FskitError) and isinstance(exc, (KeyError, LookupError)):
            return _error(404, "not_found", str(exc))
        if isinstance(exc, FskitError) and isinstance(exc, ValueError):
            return _error(422, "invalid_request", str(exc))
        if isinstance(exc, HTTPException):
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
            return _error(exc.status_code, code, str(exc.detail))
        logger.error("internal error:\n%s", "".join(traceback.format_exception(exc)))
        self.metrics.inc("fskit_errors_total", model=self.model, version="", kind="internal")
        return _error(500, "internal", f"internal error ({type(exc).__name__}); see the server log")

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise RequestError(
                f"the body is {declared} bytes; at most {MAX_BODY}", status=413, code="too_large"
            )
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise RequestError(
                f"the body is {len(raw)} bytes; at most {MAX_BODY}", status=413, code="too_large"
            )
        return raw

    async def _json_body(self, request: Request) -> Any:
        raw = await self._body(request)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(
                f"the body is not valid JSON: {exc}", status=400, code="malformed_json"
            ) from None

    def _check_model(self, name: str) -> None:
        if name != self.model:
            raise UnknownModelError(f"unknown model {name!r}: this server serves {self.model!r}")

    def _version(self, request: Request) -> int | None:
        text = request.path_params.get("version")
        if text is None or text == "":
            return None
        try:
            return int(text)
        except ValueError:
            raise UnknownModelError(
                f"model {self.model!r} has no version {text!r}; versions are integers"
            ) from None

    # -- /predict ----------------------------------------------------------------------------
    async def predict(self, request: Request) -> Response:
        started = time.perf_counter()
        payload = await self._json_body(request)
        if not isinstance(payload, dict):
            raise RequestError(
                f'the body must be a JSON object like {{"entities": [{{...}}]}}, got {type(payload).__name__}'
            )
        self._check_model(payload.get("model", self.model))
        version = payload.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise RequestError(f"version must be an integer, got {version!r}", code="wrong_type")
        if "entities" not in payload:
            raise RequestError(
                "the body lacks 'entities': a list of objects with the entity keys",
                code="missing_key",
            )
        return_features = payload.get("return_features", False)
        if not isinstance(return_features, bool):
            raise RequestError(
                f"return_features must be true or false, got {return_features!r}", code="wrong_type"
            )
        request_id = payload.get("request_id")
        if request_id is not None and not isinstance(request_id, str):
            raise RequestError(
                f"request_id must be a string, got {request_id!r}", code="wrong_type"
            )
        result = await self.batcher.submit(
            payload["entities"], request_id, version=version, return_features=return_features
        )
        timings = dict(result.timings)
        timings["total"] = time.perf_counter() - started
        result.body["timing_ms"]["total"] = round(timings["total"] * 1000, 3)
        return Response(
            json.dumps(result.body, default=str).encode(),
            media_type="application/json",
            headers={"Server-Timing": _server_timing(timings)},
            background=None if result.deferred is None else BackgroundTask(result.deferred),
        )

    # -- Open Inference Protocol v2 ------------------------------------------------------------
    async def server_metadata(self, request: Request) -> Response:
        import fskit

        return _json_response(
            {"name": "fskit", "version": fskit.__version__, "extensions": ["binary_tensor_data"]}
        )

    async def live(self, request: Request) -> Response:
        return _json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.predictor.ready
        body = {"ready": ready, "model": self.model, "stable": self.predictor.state.stable}
        return _json_response(body, 200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        self._check_model(request.path_params["name"])
        spec = self.predictor.spec(self._version(request))
        state = self.predictor.state
        return _json_response(
            {
                "name": self.model,
                "versions": [str(v) for v in state.active_versions],
                "platform": "xgboost",
                "inputs": [
                    {
                        "name": c,
                        "datatype": "BYTES" if spec.input_kind(c) == "str" else "FP64",
                        "shape": [-1],
                    }
                    for c in spec.feature_columns
                ],
                "outputs": [{"name": "probability", "datatype": "FP64", "shape": [-1]}],
                "parameters": {
                    "version": spec.version,
                    "feature_refs": list(spec.refs),
                    "request_fields": list(spec.request_fields),
                    "join_keys": list(spec.join_keys),
                },
            }
        )

    async def model_ready(self, request: Request) -> Response:
        self._check_model(request.path_params["name"])
        version = self._version(request)
        try:
            spec = self.predictor.spec(version)
        except ServingError:
            if version is not None and version not in self.predictor.state.active_versions:
                raise
            return _json_response({"name": self.model, "ready": False}, 503)
        return _json_response({"name": self.model, "version": str(spec.version), "ready": True})

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        self._check_model(request.path_params["name"])
        version = self._version(request)
        raw = await self._body(request)
        header_length = request.headers.get("inference-header-content-length")
        binary = b""
        if header_length is not None:
            try:
                n = int(header_length)
            except ValueError:
                raise RequestError(
                    "Inference-Header-Content-Length must be an integer", status=400
                ) from None
            if not 0 <= n <= len(raw):
                raise RequestError(
                    f"Inference-Header-Content-Length {n} does not fit the body of {len(raw)} bytes",
                    status=400,
                )
            raw, binary = raw[:n], raw[n:]
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(
                f"the body is not valid JSON: {exc}", status=400, code="malformed_json"
            ) from None
        inputs, binary_output, request_id = _parse_infer(payload, binary)
        scores, spec, timings = self.predictor.infer(inputs, version=version)
        timings["total"] = time.perf_counter() - started
        output: dict[str, Any] = {"name": "probability", "datatype": "FP64", "shape": [len(scores)]}
        body: dict[str, Any] = {
            "model_name": self.model,
            "model_version": str(spec.version),
            "outputs": [output],
        }
        if request_id is not None:
            body["id"] = request_id
        headers = {"Server-Timing": _server_timing(timings)}
        if binary_output:
            blob = np.asarray(scores, dtype="<f8").tobytes()
            output["parameters"] = {"binary_data_size": len(blob)}
            head = json.dumps(body).encode()
            headers["Inference-Header-Content-Length"] = str(len(head))
            return Response(head + blob, media_type="application/octet-stream", headers=headers)
        output["data"] = [None if math.isnan(s) else s for s in scores.tolist()]
        return _json_response(body, headers=headers)

    # -- metrics and deployment ----------------------------------------------------------------
    async def metrics_endpoint(self, request: Request) -> Response:
        self.predictor.refresh()
        return Response(
            self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def deployment(self, request: Request) -> Response:
        state = self.predictor.refresh()
        return _json_response(
            {
                **state.to_dict(),
                "loaded_versions": sorted(self.predictor.specs),
                "load_errors": {str(k): v for k, v in self.predictor.load_errors.items()},
                "pid": os.getpid(),
            }
        )

    async def deploy(self, request: Request) -> Response:
        from fskit.serving._state import deploy

        payload = await self._json_body(request)
        if not isinstance(payload, dict) or "version" not in payload:
            raise RequestError(
                'the body must be an object like {"version": 2, "share": 0.1}', code="missing_key"
            )
        version, share, shadow = (
            payload["version"],
            payload.get("share"),
            payload.get("shadow", False),
        )
        if isinstance(version, bool) or not isinstance(version, int):
            raise RequestError(f"version must be an integer, got {version!r}", code="wrong_type")
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))):
            raise RequestError(
                f"share must be a number in [0, 1], got {share!r}", code="wrong_type"
            )
        if not isinstance(shadow, bool):
            raise RequestError(f"shadow must be true or false, got {shadow!r}", code="wrong_type")
        as_stable, route_by = payload.get("as_stable", False), payload.get("route_by")
        if not isinstance(as_stable, bool):
            raise RequestError(
                f"as_stable must be true or false, got {as_stable!r}", code="wrong_type"
            )
        if route_by is not None and not (
            isinstance(route_by, str)
            or (isinstance(route_by, list) and all(isinstance(k, str) for k in route_by))
        ):
            raise RequestError(
                f'route_by must be a join key or a list of them like ["user_id"], got {route_by!r}',
                code="wrong_type",
            )
        self._check_registered(version)
        state = deploy(
            self.store,
            self.model,
            version,
            share=share,
            shadow=shadow,
            as_stable=as_stable,
            route_by=route_by,
        )
        self.predictor.refresh()
        return _json_response(state.to_dict())

    async def promote(self, request: Request) -> Response:
        from fskit.serving._state import promote

        payload = await self._json_body(request) if await self._body(request) else {}
        if not isinstance(payload, dict):
            raise RequestError('the body must be empty or an object like {"version": 2}')
        version = payload.get("version")
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int):
                raise RequestError(
                    f"version must be an integer, got {version!r}", code="wrong_type"
                )
            self._check_registered(version)
        state = promote(self.store, self.model, version)
        self.predictor.refresh()
        return _json_response(state.to_dict())

    async def rollback(self, request: Request) -> Response:
        from fskit.serving._state import rollback

        state = rollback(self.store, self.model)
        self.predictor.refresh()
        return _json_response(state.to_dict())

    def _check_registered(self, version: int) -> None:
        try:
            self.predictor.registry.get(self.model, version)
        except Exception as exc:
            if isinstance(exc, (FskitError, KeyError, LookupError, ValueError)):
                raise UnknownModelError(
                    f"model {self.model!r} has no registered version {version!r}: {exc}"
                ) from None
            raise

    async def openapi(self, request: Request) -> Response:
        from fskit.serving._openapi import openapi_schema

        spec = None
        with suppress(ServingError):
            spec = self.predictor.spec()
        return _json_response(openapi_schema(self.model, spec, token=self.token is not None))

    # -- lifecycle ---------------------------------------------------------------------------
    async def background(self) -> None:
        """Keep deployments loaded and share metrics with the other workers, every 0.1 s."""
        import asyncio

        ticks = 0
        while True:
            await asyncio.sleep(0.1)
            ticks += 1
            try:
                self.predictor.refresh()
                if ticks % 10 == 0:
                    self.metrics.write_snapshot()
            except Exception:  # noqa: BLE001 - keep going; requests report their own errors
                logger.exception("background refresh failed")

    def routes(self) -> list[Route]:
        e = self.endpoint
        v = "/v2/models/{name}"
        vv = "/v2/models/{name}/versions/{version}"
        return [
            Route("/predict", e("predict", self.predict), methods=["POST"]),
            Route("/v2", e("v2", self.server_metadata), methods=["GET"]),
            Route("/v2/health/live", e("live", self.live, auth=False), methods=["GET"]),
            Route("/v2/health/ready", e("ready", self.ready, auth=False), methods=["GET"]),
            Route(v, e("model_metadata", self.model_metadata), methods=["GET"]),
            Route(vv, e("model_metadata", self.model_metadata), methods=["GET"]),
            Route(f"{v}/ready", e("model_ready", self.model_ready), methods=["GET"]),
            Route(f"{vv}/ready", e("model_ready", self.model_ready), methods=["GET"]),
            Route(f"{v}/infer", e("infer", self.infer), methods=["POST"]),
            Route(f"{vv}/infer", e("infer", self.infer), methods=["POST"]),
            Route("/metrics", e("metrics", self.metrics_endpoint), methods=["GET"]),
            Route("/deployment", e("deployment", self.deployment), methods=["GET"]),
            Route("/deployment/deploy", e("deploy", self.deploy), methods=["POST"]),
            Route("/deployment/promote", e("promote", self.promote), methods=["POST"]),
            Route("/deployment/rollback", e("rollback", self.rollback), methods=["POST"]),
            Route("/openapi.json", e("openapi", self.openapi, auth=False), methods=["GET"]),
        ]


def create_app(options: ServerOptions, *, token: str | None = None) -> Starlette:
    """The Starlette app of one server worker."""
    server = _Server(options, token)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        import asyncio
        import gc

        server.predictor.refresh()
        server.predictor.warm()
        gc.collect()
        gc.freeze()  # the long-lived startup objects leave the GC's scans: shorter pauses
        if server.log is not None:
            server.log.start()
        task = asyncio.create_task(server.background())
        marker = None
        if options.run_dir:  # tells the launcher this worker is up (it waits for all of them)
            marker = Path(options.run_dir) / f"worker-{os.getpid()}.ready"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        try:
            yield
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)
            task.cancel()
            if server.log is not None:
                server.log.close()
            server.metrics.write_snapshot(force=True)
            server.store.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        return server.error_response(exc)

    app = Starlette(
        routes=server.routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )
    app.state.server = server
    return app


def app_from_env() -> Starlette:
    """The app factory uvicorn calls in each worker (options in ``FSKIT_SERVING_OPTIONS``)."""
    options = ServerOptions.from_json(os.environ[OPTIONS_ENV])
    return create_app(options, token=os.environ.get(TOKEN_ENV) or None)


# -- OIP tensors -------------------------------------------------------------------------------
_NUMPY = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _decode_bytes(blob: bytes) -> list[str]:
    out, i = [], 0
    while i < len(blob):
        if i + 4 > len(blob):
            raise RequestError("a BYTES tensor's binary data is truncated", status=400)
        (size,) = struct.unpack_from("<I", blob, i)
        i += 4
        if i + size > len(blob):
            raise RequestError("a BYTES tensor's binary data is truncated", status=400)
        out.append(blob[i : i + size].decode("utf-8", errors="replace"))
        i += size
    return out


def _parse_infer(
    payload: Any, binary: bytes
) -> tuple[dict[str, list[Any] | np.ndarray], bool, str | None]:
    """The columns of an OIP infer request, whether binary output is wanted, and its id."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise RequestError(
            'the body must be an object like {"inputs": [{"name": ..., "shape": [n], "datatype": "FP64", "data": [...]}]}',
            code="missing_key",
        )
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"id must be a string, got {request_id!r}", code="wrong_type")
    columns: dict[str, list[Any] | np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(payload["inputs"]):
        if not isinstance(tensor, dict):
            raise RequestError(f"inputs[{i}] must be an object, got {tensor!r:.60}")
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str):
            raise RequestError(
                f"inputs[{i}].name must be a string, got {name!r:.60}", code="missing_key"
            )
        if (
            not isinstance(shape, list)
            or not all(type(d) is int and d >= 0 for d in shape)
            or not shape
        ):
            raise RequestError(
                f"inputs[{i}].shape must be a list of sizes like [3], got {shape!r:.60}"
            )
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(
                f"input {name!r}: one column per feature, shape [n] or [n, 1], got {shape}"
            )
        if datatype not in _NUMPY and datatype != "BYTES":
            raise RequestError(
                f"input {name!r}: datatype must be one of {[*_NUMPY, 'BYTES']}, got {datatype!r:.40}"
            )
        size = shape[0]
        params = tensor.get("parameters") or {}
        if not isinstance(params, dict):
            raise RequestError(f"input {name!r}: parameters must be an object")
        if "binary_data_size" in params:
            nbytes = params["binary_data_size"]
            if type(nbytes) is not int or nbytes < 0 or offset + nbytes > len(binary):
                raise RequestError(
                    f"input {name!r}: binary_data_size {nbytes!r} does not fit the body", status=400
                )
            chunk = binary[offset : offset + nbytes]
            offset += nbytes
            if datatype == "BYTES":
                values: list[Any] | np.ndarray = _decode_bytes(chunk)
            else:
                dtype = np.dtype(_NUMPY[datatype])
                if nbytes % dtype.itemsize:
                    raise RequestError(
                        f"input {name!r}: {nbytes} bytes is not a whole number of {datatype}",
                        status=400,
                    )
                values = np.frombuffer(chunk, dtype=dtype)
        else:
            if "data" not in tensor:
                raise RequestError(
                    f"input {name!r} has neither 'data' nor binary data", code="missing_key"
                )
            flat = _flatten(tensor["data"])
            if datatype == "BYTES":
                if not all(isinstance(v, str) or v is None for v in flat):
                    raise RequestError(
                        f"input {name!r}: BYTES data must be strings", code="wrong_type"
                    )
                values = flat
            else:
                if not all(
                    (isinstance(v, (int, float)) and not isinstance(v, bool))
                    or (datatype == "BOOL" and isinstance(v, bool))
                    or v is None
                    for v in flat
                ):
                    raise RequestError(
                        f"input {name!r}: {datatype} data must be numbers", code="wrong_type"
                    )
                try:
                    values = np.array(
                        [math.nan if v is None else v for v in flat], dtype=np.float64
                    )
                except (OverflowError, ValueError) as exc:
                    raise RequestError(f"input {name!r}: {exc}", code="wrong_type") from None
        if len(values) != size:
            raise RequestError(
                f"input {name!r}: shape {shape} says {size} values, got {len(values)}"
            )
        columns[name] = values
    outputs = payload.get("outputs")
    binary_output = False
    params = payload.get("parameters")
    if isinstance(params, dict) and params.get("binary_data_output") is True:
        binary_output = True
    if outputs is not None:
        if not isinstance(outputs, list):
            raise RequestError('outputs must be a list of objects like {"name": "probability"}')
        for out in outputs:
            if not isinstance(out, dict) or out.get("name") != "probability":
                raise RequestError(
                    f"unknown output {out!r:.60}; this model has one output, 'probability'"
                )
            out_params = out.get("parameters") or {}
            if isinstance(out_params, dict) and out_params.get("binary_data") is True:
                binary_output = True
    return columns, binary_output, request_id
