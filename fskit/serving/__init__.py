"""Model serving: a local model server, canary deployments, a prediction log, batch scores.

>>> import fskit as fk                                              # doctest: +SKIP
>>> server = fk.serve(store, model="fraud")                         # doctest: +SKIP
>>> server.predict({"user_id": 7, "merchant_id": 3, "amount": 42.0})  # doctest: +SKIP
>>> fk.serving.deploy(store, "fraud", 2, share=0.1)                 # doctest: +SKIP
>>> fk.serving.promote(store, "fraud")                              # doctest: +SKIP
>>> fk.serving.rollback(store, "fraud")                             # doctest: +SKIP
>>> fk.serving.history(store, "fraud")                              # doctest: +SKIP
>>> server.stats()                                                  # doctest: +SKIP
>>> server.stop()                                                   # doctest: +SKIP

The pieces: :func:`serve` starts the server process and returns a :class:`ServerHandle`
(``server.stats()`` reads its ``/metrics`` into :class:`ServerStats`); :func:`deploy`,
:func:`promote`, :func:`rollback` and :func:`status` change the deployment kept in the repo
(every worker and replica follows it at once) and :func:`history` lists every change;
:func:`read_prediction_log` reads what the servers logged; :func:`batch_score` precomputes
scores for the batch pattern.
:class:`Predictor` is the scoring path they all share (``fskit.stream`` uses it too).
"""

from fskit.serving._app import ServerOptions, create_app
from fskit.serving._batch import batch_score
from fskit.serving._errors import DeploymentError, RequestError, ServingError, UnknownModelError
from fskit.serving._log import PredictionLog, read_prediction_log
from fskit.serving._metrics import parse_prometheus
from fskit.serving._predictor import Predictor
from fskit.serving._process import ServerHandle, serve
from fskit.serving._state import Deployment, deploy, history, promote, rollback, status
from fskit.serving._stats import ServerStats

__all__ = [
    # server
    "ServerHandle",
    "ServerOptions",
    "ServerStats",
    "create_app",
    "serve",
    # deployment
    "Deployment",
    "deploy",
    "history",
    "promote",
    "rollback",
    "status",
    # scoring, logs, metrics
    "PredictionLog",
    "Predictor",
    "batch_score",
    "parse_prometheus",
    "read_prediction_log",
    # errors
    "DeploymentError",
    "RequestError",
    "ServingError",
    "UnknownModelError",
]
