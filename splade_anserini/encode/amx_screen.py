"""The int8 screen of :mod:`.int8_screen` in one pass on AMX tiles: product, max over tokens, bound test.

The two-pass screen has ONNX Runtime's ``MatMulInteger`` write the whole ``[L, V]`` int32 product
(2.5 MB for a 21-token query) and a Numba pass read it back. Here each block of 16 vocabulary
entries is multiplied by the query's tokens in AMX tiles (16 tokens x 64 dimensions x 16 entries an
instruction), the fp32 max over the tokens stays in vector registers and the bound is tested at
once: only candidates leave the kernel. The integer products, the fp32 max and the float64 test are
the two-pass screen's, in the same order: the candidates are the same.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from splade_anserini.encode.amx import (F32, F64, I32, I64, address, pointer, tile_config, tile_dpbusd, tile_load,
                                        tile_palette, tile_release, tile_store, tile_zero)

BLOCK = 16           # vocabulary entries a tile holds (16 int32 columns)
ROWS = 16            # tokens a tile holds
TILE_K = 64          # hidden dimensions a tile multiplies (64 u8 a row)
B_TILE = BLOCK * TILE_K  # bytes of one packed weight tile
_VI, _VF, _VD = ir.VectorType(I32, BLOCK), ir.VectorType(F32, BLOCK), ir.VectorType(F64, BLOCK)


def _splat(builder, value, vector_type):
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined), ir.Constant(_VI, [0] * BLOCK))


@intrinsic
def _rows_max(typingctx, c_addr, rows, s_addr, z_addr, best_addr):
    """``best[l] = max(best[l], s[r] * f32(c[r, l] - z[l]))`` over ``r < rows``, 16 lanes in registers
    (``v if v > b else b``: the two-pass screen's max)."""
    def codegen(context, builder, sig, args):
        c_addr, rows, s_addr, z_addr, best_addr = args
        z = builder.load(pointer(builder, z_addr, _VI), align=4)
        slot = cgutils.alloca_once_value(builder, builder.load(pointer(builder, best_addr, _VF), align=4))
        c_rows, scales = pointer(builder, c_addr, _VI), pointer(builder, s_addr, F32)
        with cgutils.for_range(builder, rows) as loop:
            c = builder.load(builder.gep(c_rows, [loop.index]), align=4)
            v = builder.fmul(_splat(builder, builder.load(builder.gep(scales, [loop.index])), _VF),
                             builder.sitofp(builder.sub(c, z), _VF))
            best = builder.load(slot)
            builder.store(builder.select(builder.fcmp_ordered(">", v, best), v, best), slot)
        builder.store(builder.load(slot), pointer(builder, best_addr, _VF), align=4)
    return types.void(c_addr, rows, s_addr, z_addr, best_addr), codegen


@intrinsic
def _bound_mask(typingctx, best_addr, t_addr, base_addr, wn_addr, f_addr, e_max, hq_max):
    """Bit ``l`` set when ``((t*best + base) + e_max*wn) + hq_max*f > 0`` in float64 (no fused
    multiply-add: the two-pass screen's arithmetic) for the 16 lanes."""
    def codegen(context, builder, sig, args):
        best_addr, t_addr, base_addr, wn_addr, f_addr, e_max, hq_max = args

        def lanes(addr):
            return builder.load(pointer(builder, addr, _VD), align=8)
        best = builder.fpext(builder.load(pointer(builder, best_addr, _VF), align=4), _VD)
        x = builder.fadd(builder.fmul(lanes(t_addr), best), lanes(base_addr))
        x = builder.fadd(x, builder.fmul(_splat(builder, e_max, _VD), lanes(wn_addr)))
        x = builder.fadd(x, builder.fmul(_splat(builder, hq_max, _VD), lanes(f_addr)))
        positive = builder.fcmp_ordered(">", x, ir.Constant(_VD, [0.0] * BLOCK))
        return builder.zext(builder.bitcast(positive, ir.IntType(BLOCK)), I64)
    return types.int64(best_addr, t_addr, base_addr, wn_addr, f_addr, e_max, hq_max), codegen


@njit(cache=True, nogil=True)
def _screen(a, s, zero_point, w, zero, t, base, wn, f, e_max, hq_max, out, cfg):
    """Candidates of ``a`` (u8 ``[L, K]``, K a multiple of 64) into ``out``; returns their count."""
    n_rows, width = a.shape
    chunks = width // TILE_K
    tail = n_rows % ROWS
    padded = np.full((ROWS, width), zero_point, np.uint8)  # the last group's rows (never read back)
    padded[:tail] = a[n_rows - tail:]
    c = np.empty(ROWS * BLOCK, np.int32)
    best = np.empty(BLOCK, np.float32)
    n = 0
    tile_config(address(cfg, 0))
    for block in range(len(zero) // BLOCK):
        best[:] = -np.inf
        for g in range(0, n_rows, ROWS):
            rows = min(n_rows - g, ROWS)
            rows_at = address(a, g * width) if rows == ROWS else address(padded, 0)
            tile_zero(2)
            for k in range(chunks):
                tile_load(0, address(w, (block * chunks + k) * B_TILE), BLOCK * 4)
                tile_load(1, rows_at + k * TILE_K, width)
                tile_dpbusd(2, 1, 0)
            tile_store(2, address(c, 0), BLOCK * 4)
            _rows_max(address(c, 0), rows, address(s, g), address(zero, block * BLOCK), address(best, 0))
        j0 = block * BLOCK
        mask = _bound_mask(address(best, 0), address(t, j0), address(base, j0), address(wn, j0), address(f, j0),
                           e_max, hq_max)
        lane = 0
        while mask:
            if mask & 1:
                out[n] = j0 + lane
                n += 1
            mask >>= 1
            lane += 1
    tile_release()
    return n


class AmxScreen:
    """The decoder's int8 rows packed in tiles, with the screen's per-entry terms padded to whole blocks.

    ``wq`` (int8 ``[V, H]``) with scales ``t``; ``base`` = bias + absolute slack, ``wn`` = ``||W_j||``,
    ``f`` = ``||W_j - t_j Q_j||`` (float64, as :class:`~.int8_screen.Int8Screen` computes them);
    ``zero_point``: the u8 inputs' (``c_ij = (a_i - zero_point) . Q_j``).
    """

    def __init__(self, wq: np.ndarray, t: np.ndarray, base: np.ndarray, wn: np.ndarray, f: np.ndarray,
                 zero_point: int):
        vocab, hidden = wq.shape
        self.zero_point = int(zero_point)
        self.hidden = hidden
        self.width = -(-hidden // TILE_K) * TILE_K  # dimensions padded with zero weights
        blocks = -(-vocab // BLOCK)
        q = np.zeros((blocks * BLOCK, self.width), np.int8)
        q[:vocab, :hidden] = wq
        # Tile layout: per block and 64-dimension chunk, 16 rows of 4 dimensions x 16 entries.
        chunks = self.width // TILE_K
        self._w = np.ascontiguousarray(
            q.reshape(blocks, BLOCK, chunks, TILE_K // 4, 4).transpose(0, 2, 3, 1, 4)).reshape(-1)
        self._zero = (self.zero_point * q.sum(axis=1, dtype=np.int32)).astype(np.int32)

        def padded(x, fill):
            y = np.full(blocks * BLOCK, fill, np.float64)
            y[:vocab] = x
            return y
        # Padding entries never pass: their base is -inf.
        self._t, self._base, self._wn, self._f = padded(t, 0.0), padded(base, -np.inf), padded(wn, 0.0), padded(f, 0.0)
        self._cfg = tile_palette(ROWS, TILE_K)

    def inputs(self, n_rows: int) -> np.ndarray:
        """The u8 input rows for ``n_rows`` tokens (padding dimensions at the zero point)."""
        return np.full((n_rows, self.width), self.zero_point, np.uint8)

    def screen(self, a: np.ndarray, s: np.ndarray, e_max: float, hq_max: float, out: np.ndarray) -> int:
        """Candidates of the quantized rows ``a`` (from :meth:`inputs`) with scales ``s`` into ``out``."""
        return _screen(a, s, self.zero_point, self._w, self._zero, self._t, self._base, self._wn, self._f, e_max, hq_max, out,
                       self._cfg)
