"""XGBoost trees as plain Python lists: scoring a few rows without XGBoost's per-call cost.

``Booster.inplace_predict`` costs about 170 µs per call here whatever the number of rows (it
builds an array interface, a JSON config and a proxy matrix before the C++ predictor runs).
A model server answering one entity per request pays that on every request. For a few rows,
Python is cheaper, so :class:`CompiledTrees` scores them and leaves bigger batches to XGBoost.

Two ways to run the trees, same rule: a walk over flat node lists (the reference, ~30 µs for
60 trees of depth 6), and the trees as generated Python source, one nested ``if`` per split
(~7 µs, the way m2cgen or treelite turn trees into code). The source is built only from the
ints and floats of the model (``repr`` of values checked to be ``int``/finite ``float``),
never from a string found in the model file, and compiled once; models too big for that
(more than ``MAX_GENERATED_NODES`` nodes or deeper than ``MAX_GENERATED_DEPTH``) are walked.

The walk is XGBoost's own rule, taken from its JSON model:

* inputs are float32 (the caller passes float32 values; ``encode_features`` makes them);
* at a split node, a missing value (NaN) follows ``default_left``; otherwise, at a
  numerical split ``value < split_condition`` goes left, anything else right, and at a
  categorical split (``enable_categorical``) a category in the node's set goes right,
  anything else (another or an invalid category) left;
* the margin starts at the base margin and adds each tree's leaf value *in float32, in tree
  order* (XGBoost's CPU predictor accumulates a row exactly so);
* ``binary:logistic`` turns the margin into a probability with the sigmoid.

So the leaves reached are exactly XGBoost's (``pred_leaf``) and the margin is bitwise
XGBoost's; so is the probability, computed with the C library's ``expf`` as XGBoost's is
(where that library cannot be loaded, a float64 exp rounded to float32 can differ in the last
bit, rarely). The tests check all three against XGBoost on random models and inputs.

Only what fskit trains is compiled: ``gbtree`` boosters, objective ``binary:logistic``, one
target. Anything else (dart, multi-class, other objectives) makes
:meth:`CompiledTrees.from_booster` return ``None`` with the reason, and XGBoost scores it.

>>> import numpy as np, xgboost as xgb
>>> x = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
>>> booster = xgb.train({"objective": "binary:logistic", "max_depth": 2},
...                     xgb.DMatrix(x, label=[0, 0, 1, 1]), num_boost_round=3)
>>> trees, reason = CompiledTrees.from_booster(booster)
>>> expected = booster.inplace_predict(x).tolist()
>>> [round(a - b, 7) for a, b in zip(trees.predict(x.tolist()), expected)]
[0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["CompiledTrees"]


class CompiledTrees:
    """A ``binary:logistic`` gbtree model as flat node lists (see the module docs).

    Nodes of all trees share one index space: ``roots[t]`` is tree ``t``'s root; for a split
    node ``i``, ``feature[i]``, ``threshold[i]`` (a float32 value held as a Python float),
    ``left[i]``, ``right[i]`` and ``missing[i]`` (the default child); for a leaf, ``left[i]``
    is ``-1`` and ``threshold[i]`` its value. A categorical split has ``threshold[i] = -inf``
    (so the numerical test never sends a value left) and its set of categories going right in
    ``categories[i]`` (``None`` elsewhere).
    """

    __slots__ = ("base_margin", "categories", "feature", "left", "missing", "n_features", "right", "roots", "threshold", "_generated")  # fmt: skip

    def __init__(
        self,
        *,
        roots: list[int],
        feature: list[int],
        threshold: list[float],
        left: list[int],
        right: list[int],
        missing: list[int],
        categories: list[frozenset[int] | None],
        base_margin: float,
        n_features: int,
    ) -> None:
        self.roots = roots
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.missing = missing
        self.categories = categories
        self.base_margin = np.float32(base_margin)
        self.n_features = n_features
        self._generated: Any = False  # the generated scorer: False until first use, or None

    @property
    def generated(self) -> Callable[[Sequence[float]], tuple[float, ...]] | None:
        """The generated function ``row -> (base margin, leaf value of each tree...)``, or
        ``None`` when the model is too big to generate (then :meth:`margins` walks)."""
        if self._generated is False:
            self._generated = _generate(self)
        return self._generated

    def __repr__(self) -> str:
        return f"CompiledTrees(trees={len(self.roots)}, nodes={len(self.left)})"

    @classmethod
    def from_booster(cls, booster: Any) -> tuple[CompiledTrees | None, str]:
        """Compile ``booster``; ``(None, reason)`` when it is not a model this can score."""
        return cls.from_json(json.loads(booster.save_raw("json")))

    @classmethod
    def from_json(cls, model: dict[str, Any]) -> tuple[CompiledTrees | None, str]:
        """Compile XGBoost's JSON model (``Booster.save_raw("json")`` parsed)."""
        try:
            learner = model["learner"]
            objective = learner["objective"]["name"]
            params = learner["learner_model_param"]
            booster = learner["gradient_booster"]
            kind = booster["name"]
        except (KeyError, TypeError) as exc:
            return None, f"unknown XGBoost JSON layout (no {exc})"
        if kind != "gbtree":
            return None, f"booster {kind!r} (only 'gbtree' is compiled)"
        if objective != "binary:logistic":
            return None, f"objective {objective!r} (only 'binary:logistic' is compiled)"
        if int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) > 1:
            return None, "more than one output"
        base = str(params["base_score"]).strip("[]").split(",")
        if len(base) != 1:
            return None, "more than one base score"
        trees = booster["model"]["trees"]
        roots: list[int] = []
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        missing: list[int] = []
        categories: list[frozenset[int] | None] = []
        for tree in trees:
            offset = len(left)
            roots.append(offset)
            lefts = tree["left_children"]
            rights = tree["right_children"]
            defaults = tree["default_left"]
            # float32 thresholds and leaf values, held as the Python floats they equal
            conditions = np.asarray(tree["split_conditions"], dtype=np.float32).tolist()
            sets = _categorical_sets(tree)
            for i, (lc, rc) in enumerate(zip(lefts, rights, strict=True)):
                if lc == -1:
                    left.append(-1)
                    right.append(-1)
                    missing.append(-1)
                    feature.append(0)
                else:
                    left.append(lc + offset)
                    right.append(rc + offset)
                    missing.append((lc if defaults[i] else rc) + offset)
                    feature.append(int(tree["split_indices"][i]))
                if i in sets:
                    threshold.append(-math.inf)
                    categories.append(sets[i])
                else:
                    threshold.append(conditions[i])
                    categories.append(None)
        # XGBoost keeps base_score as a probability and starts from -logf(1/p - 1) in float32
        odds = np.float32(1.0) / np.float32(base[0]) - np.float32(1.0)
        base_margin = -_logf(float(odds))
        compiled = cls(
            roots=roots,
            feature=feature,
            threshold=threshold,
            left=left,
            right=right,
            missing=missing,
            categories=categories,
            base_margin=float(base_margin),
            n_features=int(params.get("num_feature", 0)),
        )
        return compiled, ""

    def leaves(self, row: Sequence[float]) -> list[int]:
        """The node each tree's walk ends in, per tree, numbered within the tree (XGBoost's
        ``pred_leaf``)."""
        return [self._walk(root, row) - root for root in self.roots]

    def _walk(self, node: int, row: Sequence[float]) -> int:
        left, right, missing = self.left, self.right, self.missing
        feature, threshold, categories = self.feature, self.threshold, self.categories
        while left[node] != -1:
            value = row[feature[node]]
            if value != value:  # NaN
                node = missing[node]
            elif value < threshold[node]:
                node = left[node]
            elif (chosen := categories[node]) is None:
                node = right[node]
            else:
                node = right[node] if _category(value) in chosen else left[node]
        return node

    def margins(self, rows: Sequence[Sequence[float]], *, walk: bool = False) -> np.ndarray:
        """Each row's margin (float32), summed as XGBoost sums it.

        By the generated code when there is one, else (or with ``walk=True``) by the walk.
        """
        generated = None if walk else self.generated
        if generated is not None:
            terms = [generated(row) for row in rows]
        else:
            threshold, base = self.threshold, float(self.base_margin)
            terms = [
                (base, *(threshold[self._walk(root, row)] for root in self.roots)) for row in rows
            ]
        matrix = np.array(terms, dtype=np.float32).reshape(len(rows), len(self.roots) + 1)
        # float32, left to right: cumsum is sequential (a plain sum would pair terms up)
        return np.cumsum(matrix, axis=1, dtype=np.float32)[:, -1]

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Probability of the positive class per row (float32 precision, as Python floats).

        ``rows`` hold float32 values (NaN for missing) in the model's feature order.
        """
        # XGBoost's sigmoid, in float32: 1 / (expf(min(-x, 88.7)) + 1 + 1e-16)
        x = np.minimum(-self.margins(rows), _F32_88_7)
        expf = _c_function("expf")
        if expf is not None:
            e = np.array([expf(v) for v in x.tolist()], dtype=np.float32)
        else:  # float64 exp rounded to float32: the last bit may differ, rarely
            e = np.exp(x.astype(np.float64)).astype(np.float32)
        return (_F32_ONE / (e + _F32_ONE + _F32_EPS)).tolist()


#: Bigger models are walked, not generated (compiling costs ~10 µs a node, once).
MAX_GENERATED_NODES = 100_000
#: Deeper trees are walked (Python's parser limits how deeply blocks nest).
MAX_GENERATED_DEPTH = 40


def _generate(trees: CompiledTrees) -> Callable[[Sequence[float]], tuple[float, ...]] | None:
    """The trees as one Python function (see the module docs); ``None`` when too big."""
    if len(trees.left) > MAX_GENERATED_NODES:
        return None
    left, right, missing = trees.left, trees.right, trees.missing
    feature, threshold, categories = trees.feature, trees.threshold, trees.categories
    sets: list[frozenset[int]] = []
    lines = ["def leaf_values(r):"]

    def number(value: float) -> str:
        if type(value) is not float or not math.isfinite(value):
            raise ValueError(f"not a finite float: {value!r}")
        return repr(value)

    def emit(node: int, depth: int, target: str) -> None:
        if depth > MAX_GENERATED_DEPTH:
            raise RecursionError
        pad = "    " * depth
        if left[node] == -1:
            lines.append(f"{pad}{target} = {number(threshold[node])}")
            return
        column = int(feature[node])
        chosen = categories[node]
        if chosen is not None:
            index = len(sets)
            sets.append(chosen)
            lines.append(f"{pad}v = r[{column}]")
            lines.append(f"{pad}if v != v:")
            emit(missing[node], depth + 1, target)
            lines.append(f"{pad}elif _category(v) in _sets[{index}]:")
            emit(right[node], depth + 1, target)
            lines.append(f"{pad}else:")
            emit(left[node], depth + 1, target)
            return
        # `v < t` is False for NaN, so NaN goes right: right is the default as it stands;
        # `not v >= t` is True for NaN, so NaN goes left: the same test when left is default
        test = "not r[{}] >= {}" if missing[node] == left[node] else "r[{}] < {}"
        lines.append(f"{pad}if {test.format(column, number(threshold[node]))}:")
        emit(left[node], depth + 1, target)
        lines.append(f"{pad}else:")
        emit(right[node], depth + 1, target)

    try:
        for t, root in enumerate(trees.roots):
            emit(root, 1, f"t{t}")
    except (RecursionError, ValueError):
        return None
    leaves = ", ".join(f"t{t}" for t in range(len(trees.roots)))
    lines.append(f"    return (_base, {leaves},)")
    namespace: dict[str, Any] = {
        "_category": _category,
        "_sets": tuple(sets),
        "_base": float(trees.base_margin),
    }
    exec(compile("\n".join(lines), "<fskit compiled trees>", "exec"), namespace)  # noqa: S102
    return namespace["leaf_values"]


def _categorical_sets(tree: dict[str, Any]) -> dict[int, frozenset[int]]:
    """Node id → the categories its split sends right, for the tree's categorical splits."""
    types = tree.get("split_type") or ()
    if not any(types):
        return {}
    nodes = tree["categories_nodes"]
    starts = tree["categories_segments"]
    sizes = tree["categories_sizes"]
    cats = tree["categories"]
    sets = {
        int(node): frozenset(int(c) for c in cats[start : start + size])
        for node, start, size in zip(nodes, starts, sizes, strict=True)
    }
    for i, kind in enumerate(types):
        if kind and i not in sets:  # a categorical split with no category goes all left
            sets[i] = frozenset()
    return sets


@functools.cache
def _c_function(name: str) -> Any:
    """The C library's float function ``name`` (``logf``, ``expf``), which XGBoost's C++
    calls, or ``None`` where it cannot be loaded. Loaded on first use, not at import
    (``find_library``, the fallback, runs a subprocess)."""
    for library in ("libm.so.6", ctypes.util.find_library("m")):
        if library is None:
            continue
        try:
            function = getattr(ctypes.CDLL(library), name)
        except (OSError, AttributeError):
            continue
        function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
        return function
    return None


def _logf(x: float) -> np.float32:
    """``logf(x)`` as XGBoost gets it: glibc's is not always correctly rounded, so the float64
    log rounded to float32 is only the fallback (it can differ in the last bit)."""
    logf = _c_function("logf")
    if logf is not None:
        return np.float32(logf(x))
    return np.float32(math.log(x))


def _category(value: float) -> int:
    """XGBoost's category of an input value: its integer part; -1 (none) when invalid."""
    if 0.0 <= value < _MAX_CATEGORY:
        return int(value)
    return -1


_MAX_CATEGORY = float(2**24)  # XGBoost refuses categories this large (float32 integers)
_F32_ONE = np.float32(1.0)
_F32_EPS = np.float32(1e-16)
_F32_88_7 = np.float32(88.7)
