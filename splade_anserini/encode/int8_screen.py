"""Exact SPLADE pooling of a query's hidden states, screened by one int8 product (numpy, Numba, ONNX Runtime).

``w_j = pool_i log(1 + ReLU(h_i . W_j + b_j))`` is 0 unless some token's logit is positive, and for a
query only about 0.2% of the vocabulary entries are. :class:`Int8Screen` proves the others
non-positive with an int8 product, then computes the exact fp32 logits of the candidates only.

Per query: one Numba call quantizes the states and measures their errors; the int32 products are
screened, either in one Numba pass on AMX tiles (:mod:`.amx_screen`, where the CPU has them) or by
ONNX Runtime's ``MatMulInteger`` and a Numba pass over its output (the same candidates); one more
Numba call computes the candidates' logits (fp32 products summed in float64 in order over ``k``,
vectorized across tokens).

With ``h_i ~ s_i q_i`` (``q_i`` integers in [-63, 63]; one scale for all of a query's rows) and
``W_j ~ t_j Q_j`` (per-row scales, ``Q_j`` in [-127, 127]), the integer product ``c_ij = q_i . Q_j``
gives ``a_ij = s_i t_j c_ij`` and

    |h_i . W_j - a_ij| <= ||h_i - s_i q_i|| ||W_j|| + ||s_i q_i|| ||W_j - t_j Q_j||    (Cauchy-Schwarz)

so an entry is a candidate when ``max_i (a_ij + bound_ij) + b_j + slack_j > 0``; ``slack_j``
covers the float rounding of the bound and of the fp32 reference itself (a logit within it of 0
has integer impact 0 at any usual factor). ``MatMulInteger`` multiplies u8 by s8 (VNNI where the
CPU has it). The activations use 7 bits (``q + 64`` in [1, 127]), so that the pairwise int16 sums
of the kernels for CPUs without VNNI cannot saturate: ``2 * 127 * 127 < 2^15``. The bound uses the
actual quantization errors, whatever the kernel.
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit

from splade_anserini.encode.vectors import SparseVector

H_LEVELS = 63     # |q_i| <= 63: u8 = q + 64 in [1, 127]
W_LEVELS = 127
ZERO_POINT = 64
SLACK_ABS = 1e-3  # a logit <= 1e-3 has weight log1p(1e-3) < 0.005 / 100: impact 0 at factors up to 500
SLACK_REL = 2.0 ** -16  # fp32 rounding of a 128-to-1024-term dot product, relative to ||h|| ||W_j||
#: How the int8 product runs: "auto" (AMX tiles where this process may use them, else ONNX Runtime),
#: "amx" or "onnxruntime". The environment variable overrides the default for every screen.
KERNELS = ("auto", "amx", "onnxruntime")
KERNEL_ENV = "SPLADE_ANSERINI_INT8_KERNEL"


def resolve_kernel(kernel: str | None = None) -> str:
    """``"amx"`` or ``"onnxruntime"`` for a requested kernel (None: :data:`KERNEL_ENV`, else auto);
    ValueError for an unknown name or AMX on a CPU or process without it."""
    from splade_anserini.encode.amx import amx_int8_available

    kernel = kernel or os.environ.get(KERNEL_ENV) or "auto"
    if kernel not in KERNELS:
        raise ValueError(f"int8 kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    if kernel == "auto":
        return "amx" if amx_int8_available() else "onnxruntime"
    if kernel == "amx" and not amx_int8_available():
        raise ValueError("int8 kernel amx: this CPU, or this process, cannot use AMX int8 tiles")
    return kernel


@njit(cache=True, nogil=True)
def _quantize(h, a, ht):
    """Symmetric 7-bit quantization of ``h [L, H]`` (fp32) with one scale for all of its rows:
    ``a = q + 64`` (u8), the fp32 scale ``s`` returned, with ``ht`` the float64 transpose of
    ``h`` (for :func:`_exact_pool`), the largest row error ``max_i ||h_i - s_i q_i||`` and the
    largest ``max_i ||s_i q_i||`` (float64 sums: their rounding, relative 2^-45 or so, is far inside
    ``SLACK_REL``). The bound takes the largest row error whatever the scales, so one scale for the
    query costs little (measured: 6% more candidates than per-row scales on SciFact test) and lets
    the max over tokens run on the integer products (:mod:`.amx_screen`)."""
    n_rows, hidden = h.shape
    peak = 0.0
    for i in range(n_rows):
        for k in range(hidden):
            x = np.float64(h[i, k])
            ht[k, i] = x
            peak = max(peak, abs(x))
    # The fp32 scale is the one the screen multiplies by: errors are measured against it.
    scale = np.float32(peak / H_LEVELS if peak > 0 else 1.0)
    si = np.float64(scale)
    e2_max = 0.0
    n2_max = 0.0
    for i in range(n_rows):
        e2 = 0.0
        n2 = 0.0
        for k in range(hidden):
            q = min(max(np.rint(ht[k, i] / si), -H_LEVELS), H_LEVELS)
            a[i, k] = np.uint8(q + ZERO_POINT)
            d = ht[k, i] - si * q
            e2 += d * d
            n2 += (si * q) ** 2
        e2_max = max(e2_max, e2)
        n2_max = max(n2_max, n2)
    return scale, np.sqrt(e2_max), np.sqrt(n2_max)


@njit(cache=True, nogil=True)
def _screen(c, s, t, bias_slack, wn, f, e_max, hq_max, out):
    """Indices ``j`` with ``t_j s max_i c_ij + bias_slack_j + e_max wn_j + hq_max f_j > 0`` into
    ``out``; returns their count. The max over tokens runs on the integers, vectorized over the
    vocabulary (whole rows: measured faster than vocabulary blocks kept in L1, as the pass is bound by
    reading ``c``), then ``s * f32(max)`` in fp32 (equal to the max of ``s * f32(c_ij)``: rounding is
    monotonic); its rounding (relative 2^-22 at most) is inside the ``SLACK_REL`` part of ``e_max``."""
    n_rows, vocab = c.shape
    scale = np.float32(s)  # fp32 whatever the caller passes (Numba returns fp32 scalars to Python as floats)
    best = c[0].copy()
    for i in range(1, n_rows):
        for j in range(vocab):
            v = c[i, j]
            b = best[j]
            best[j] = v if v > b else b
    n = 0
    for j in range(vocab):
        if t[j] * (scale * np.float32(best[j])) + bias_slack[j] + e_max * wn[j] + hq_max * f[j] > 0.0:
            out[n] = j
            n += 1
    return n


@njit(cache=True, nogil=True)
def _exact_pool(ht, weight, bias, cand, max_pool, ids, weights):
    """``pool_i log1p(relu(h_i . W_j + b_j))`` for the candidates ``j``; the positive ones go to
    ``ids``/``weights``, their count is returned. ``ht`` is ``h`` transposed in float64: the products
    of fp32 values are exact in float64 and each token's sum runs over ``k`` in order, so the tokens
    vectorize without reassociating any sum (no BLAS call, whose threads cost more than these few
    dot products)."""
    hidden, n_rows = ht.shape
    acc = np.empty(n_rows, np.float64)
    n = 0
    for c in range(len(cand)):
        j = cand[c]
        acc[:] = 0.0
        for k in range(hidden):
            w = np.float64(weight[j, k])
            for i in range(n_rows):
                acc[i] += ht[k, i] * w
        pooled = 0.0
        for i in range(n_rows):
            logit = np.float32(acc[i] + bias[j])
            act = np.log1p(logit) if logit > 0 else 0.0
            pooled = max(pooled, act) if max_pool else pooled + act
        if pooled > 0:
            ids[n] = j
            weights[n] = pooled
            n += 1
    return n


def quantize_rows(x: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row quantization: ``(q int, scale float64)`` with ``x_i ~ scale_i q_i``, ``|q| <= levels``."""
    x64 = np.asarray(x, dtype=np.float64)
    peak = np.abs(x64).max(axis=1)
    scale = np.where(peak > 0, peak / levels, 1.0)
    q = np.clip(np.rint(x64 / scale[:, None]), -levels, levels)
    return q, scale


def _matmul_integer_session(weight_q: np.ndarray, threads: int):
    """An ONNX Runtime session: ``u8 [L, H]`` (zero point 64) x the ``s8 [H, V]`` matrix -> ``int32 [L, V]``."""
    from onnx import TensorProto, helper

    from splade_anserini.serve.sessions import cpu_session

    hidden = weight_q.shape[1]
    nodes = [helper.make_node("MatMulInteger", ["a", "w", "a_zero"], ["c"])]
    inits = [helper.make_tensor("w", TensorProto.INT8, list(weight_q.T.shape), np.ascontiguousarray(weight_q.T).tobytes(),
                                raw=True),
             helper.make_tensor("a_zero", TensorProto.UINT8, [], [ZERO_POINT])]
    graph = helper.make_graph(nodes, "int8_screen",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, hidden])],
                              [helper.make_tensor_value_info("c", TensorProto.INT32, [None, weight_q.shape[0]])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return cpu_session(model.SerializeToString(), threads, prepack=True)


class Int8Screen:
    """Exact pooled SPLADE weights of ``[L, H]`` hidden states against the decoder ``weight [V, H]``, ``bias [V]``.

    ``pool(h)`` gives the same weights as ``pool_i log1p(relu(h @ weight.T + bias))`` (``max`` or
    ``sum`` pooling) up to fp32 rounding, computing fp32 logits for the screened candidates only.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, pooling: str = "max", threads: int = 1,
                 kernel: str | None = None):
        if pooling not in ("max", "sum"):
            raise ValueError(f"pooling must be max or sum, got {pooling!r}")
        self.pooling = pooling
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        vocab = self.weight.shape[0]
        self.bias = np.zeros(vocab, np.float32) if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        wq, self._t = quantize_rows(self.weight, W_LEVELS)
        self._wn = np.linalg.norm(self.weight.astype(np.float64), axis=1)
        self._f = np.linalg.norm(self.weight - self._t[:, None] * wq, axis=1)
        self._bias_slack = self.bias.astype(np.float64) + SLACK_ABS
        #: The int8 product's kernel (:func:`resolve_kernel`).
        self.kernel = resolve_kernel(kernel)
        if self.kernel == "amx":
            from splade_anserini.encode.amx_screen import AmxScreen

            self._amx = AmxScreen(wq.astype(np.int8), self._t, self._bias_slack, self._wn, self._f, ZERO_POINT)
        else:
            self._session = _matmul_integer_session(wq.astype(np.int8), threads)
        #: Candidates of the last call (for measurements).
        self.last_candidates = 0

    def _candidates(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(candidates, h^T in float64)`` for fp32 ``h [L, H]`` (L >= 1): quantize, one int8 product, screen."""
        n_rows, hidden = h.shape
        amx = self.kernel == "amx"
        a = self._amx.inputs(n_rows) if amx else np.empty((n_rows, hidden), np.uint8)
        ht = np.empty((hidden, n_rows), np.float64)
        s, e_max, hq_max = _quantize(h, a if a.shape[1] == hidden else a[:, :hidden], ht)
        e_max += SLACK_REL * (hq_max + e_max)  # float rounding of the screen and of the fp32 reference
        out = np.empty(len(self._t), dtype=np.int64)  # per call: concurrent callers share the object
        if amx:
            n = self._amx.screen(a, s, e_max, hq_max, out)
        else:
            c = self._session.run(None, {"a": a})[0]
            n = _screen(c, s, self._t, self._bias_slack, self._wn, self._f, e_max, hq_max, out)
        self.last_candidates = n
        return out[:n], ht

    def candidates(self, h: np.ndarray) -> np.ndarray:
        """Ascending vocabulary ids whose pooled logit may be positive (all others provably are not).

        The per-token error terms are bounded by their maxima over the tokens (one fp32 max per
        entry instead of three products): measured, it keeps as few candidates as the per-token bound."""
        h = np.ascontiguousarray(h, dtype=np.float32)
        return self._candidates(h)[0] if h.shape[0] else np.empty(0, np.int64)

    def pool(self, h: np.ndarray) -> SparseVector:
        """The exact SPLADE vector of one text's ``[L, H]`` hidden states (padding excluded)."""
        h = np.ascontiguousarray(h, dtype=np.float32)
        if h.shape[0] == 0:
            return SparseVector(np.empty(0, np.int32), np.empty(0, np.float32))
        cand, ht = self._candidates(h)
        ids = np.empty(len(cand), np.int32)
        weights = np.empty(len(cand), np.float32)
        n = _exact_pool(ht, self.weight, self.bias, cand, self.pooling == "max", ids, weights)
        return SparseVector(ids[:n], weights[:n])
