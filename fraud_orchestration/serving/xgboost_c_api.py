"""XGBoost's prediction calls made straight through its public C API, for small batches.

On a few rows the Python wrapper's bookkeeping costs about as much as XGBoost's own work: it
re-dispatches on the input's type, serialises its JSON arguments and wraps the output on
every call; here the arguments are serialised once per model. For one transaction of the
benchmark's model, ``inplace_predict`` took 0.37 ms against 0.21 ms here, and approximate
contributions 0.52 ms against 0.30 ms (medians, interleaved, ``python -m benchmarks.serving``).

:meth:`DensePredictor.scores` is the call ``inplace_predict`` makes
(``XGBoosterPredictFromDense``); :meth:`DensePredictor.contributions` the calls
``predict(pred_contribs=True)`` makes (``XGDMatrixCreateFromDense`` then
``XGBoosterPredictFromDMatrix``); ``scores`` hands XGBoost a proxy DMatrix of the thread's
own, made once, where the wrapper lets XGBoost make one per call. Both give bit-for-bit the
wrapper's results (``tests/serving/test_xgboost_c_api.py``). ctypes releases the GIL during
each call, so the event loop keeps serving while trees are walked.
"""

from __future__ import annotations

import ctypes
import json
import threading
from functools import cache
from typing import Any

import numpy as np
import xgboost as xgb
from xgboost.libpath import find_lib_path

_ULONG_P = ctypes.POINTER(ctypes.c_uint64)
_FLOAT_P = ctypes.POINTER(ctypes.c_float)


@cache
def _library() -> ctypes.CDLL:
    """libxgboost, the copy the ``xgboost`` package loaded (``dlopen`` returns the same one)."""
    library = ctypes.cdll.LoadLibrary(find_lib_path()[0])
    library.XGBGetLastError.restype = ctypes.c_char_p
    out: list[Any] = [ctypes.POINTER(_ULONG_P), _ULONG_P, ctypes.POINTER(_FLOAT_P)]
    library.XGBoosterPredictFromDense.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_void_p,
        *out,
    ]
    library.XGBoosterPredictFromDMatrix.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_char_p,
        *out,
    ]
    library.XGDMatrixCreateFromDense.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p),
    ]
    library.XGDMatrixFree.argtypes = [ctypes.c_void_p]
    library.XGProxyDMatrixCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    return library


def _check(status: int) -> None:
    if status != 0:
        raise xgb.core.XGBoostError(_library().XGBGetLastError().decode(errors="replace"))


class DensePredictor:
    """Scores and contributions of one booster for float32 row-major matrices, one thread.

    Holds a reference to the booster: its C handle must outlive every call. The matrix's
    column count is checked here: XGBoost 3.2 corrupts the heap computing contributions for a
    matrix with more columns than the model has features (its Python wrapper too, with
    ``validate_features=False``).
    """

    def __init__(self, booster: xgb.Booster, iteration_range: tuple[int, int]) -> None:
        self.booster = booster
        self.features = booster.num_features()
        self.library = _library()
        begin, end = (int(bound) for bound in iteration_range)
        if (begin, end) == (0, booster.num_boosted_rounds()):
            end = 0  # XGBoost's "every tree": the same trees, 10-20 % less time than spelt out

        def config(prediction_type: int) -> bytes:
            """Prediction types: 0 value, 2 SHAP contributions, 3 approximate (Saabas)."""
            return json.dumps(
                {
                    "type": prediction_type,
                    "training": False,
                    "iteration_begin": begin,
                    "iteration_end": end,
                    "missing": float("nan"),
                    "strict_shape": False,
                    "cache_id": 0,
                }
            ).encode()

        self._value_config = config(0)
        self._contribution_configs = {True: config(3), False: config(2)}
        self._dmatrix_config = b'{"missing": NaN, "nthread": 1}'
        self._local = threading.local()

    def scores(self, x: np.ndarray) -> np.ndarray:
        """What ``inplace_predict(x, iteration_range=...)`` answers: one float32 per row."""
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            proxy = self._local.proxy = _Proxy(self.library)
        shape, dims, result = _ULONG_P(), ctypes.c_uint64(), _FLOAT_P()
        _check(
            self.library.XGBoosterPredictFromDense(
                self.booster.handle,
                self._array_interface(x),
                self._value_config,
                proxy.handle,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(result),
            )
        )
        return _copy(result, shape, dims)

    def contributions(self, x: np.ndarray, approximate: bool) -> np.ndarray:
        """What ``predict(DMatrix(x), pred_contribs=True, approx_contribs=approximate)``
        answers: one row of per-feature contributions, then the bias, per row of ``x``."""
        matrix = ctypes.c_void_p()
        _check(
            self.library.XGDMatrixCreateFromDense(
                self._array_interface(x), self._dmatrix_config, ctypes.byref(matrix)
            )
        )
        try:
            shape, dims, result = _ULONG_P(), ctypes.c_uint64(), _FLOAT_P()
            _check(
                self.library.XGBoosterPredictFromDMatrix(
                    self.booster.handle,
                    matrix,
                    self._contribution_configs[approximate],
                    ctypes.byref(shape),
                    ctypes.byref(dims),
                    ctypes.byref(result),
                )
            )
            return _copy(result, shape, dims)
        finally:
            self.library.XGDMatrixFree(matrix)

    def _array_interface(self, x: np.ndarray) -> bytes:
        """NumPy's array interface (version 3) of a C-contiguous float32 matrix with the
        model's column count, as XGBoost reads it. The caller keeps ``x`` alive."""
        if x.dtype != np.float32 or x.ndim != 2 or not x.flags.c_contiguous:
            raise ValueError("expected a C-contiguous float32 matrix")
        rows, columns = x.shape
        if columns != self.features:
            raise ValueError(f"the matrix has {columns} columns; the model has {self.features}")
        return b'{"data": [%d, true], "shape": [%d, %d], "typestr": "<f4", "version": 3}' % (
            x.ctypes.data,
            rows,
            columns,
        )


class _Proxy:
    """A proxy DMatrix, the one ``XGBoosterPredictFromDense`` otherwise creates on every call
    (with its context, which reads the cgroup's CPU quota from /sys: 11 system calls). One
    per thread: each call points it at that call's matrix. Freed with its thread."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self.library = library
        self.handle = ctypes.c_void_p()
        _check(library.XGProxyDMatrixCreate(ctypes.byref(self.handle)))

    def __del__(self) -> None:
        self.library.XGDMatrixFree(self.handle)


def _copy(result: ctypes._Pointer, shape: ctypes._Pointer, dims: ctypes.c_uint64) -> np.ndarray:
    """The answer copied out of XGBoost's buffer, which the next call on this thread reuses."""
    extent = tuple(int(shape[axis]) for axis in range(dims.value))
    if 0 in extent:
        return np.empty(extent, dtype=np.float32)
    return np.ctypeslib.as_array(result, shape=extent).copy()
