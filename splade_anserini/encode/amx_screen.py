"""The int8 screen of :mod:`.int8_screen` in one pass on AMX tiles: product, max over tokens, bound test.

The two-pass screen has ONNX Runtime's ``MatMulInteger`` write the whole ``[L, V]`` int32 product
(2.5 MB for a 21-token query) and a Numba pass read it back. Here each block of 16 vocabulary
entries is multiplied by the query's tokens in AMX tiles (16 tokens x 64 dimensions x 16 entries an
instruction), the max over the tokens of the integer products stays in vector registers and the
bound is tested at once: only candidates leave the kernel. The integer max, its fp32 scaling and the
float64 test are the two-pass screen's (:func:`~.int8_screen._screen`), in the same order: the
candidates are the same.
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
def _rows_max(typingctx, c_addr, rows, best_addr):
    """``best[l] = max(best[l], max_r c[r, l])`` over ``r < rows``: 16 int32 lanes in registers."""
    def codegen(context, builder, sig, args):
        c_addr, rows, best_addr = args
        slot = cgutils.alloca_once_value(builder, builder.load(pointer(builder, best_addr, _VI), align=4))
        c_rows = pointer(builder, c_addr, _VI)
        with cgutils.for_range(builder, rows) as loop:
            c = builder.load(builder.gep(c_rows, [loop.index]), align=4)
            best = builder.load(slot)
            builder.store(builder.select(builder.icmp_signed(">", c, best), c, best), slot)
        builder.store(builder.load(slot), pointer(builder, best_addr, _VI), align=4)
    return types.void(c_addr, rows, best_addr), codegen


@intrinsic
def _bound_mask(typingctx, best_addr, z_addr, scale, t_addr, base_addr, wn_addr, f_addr, e_max, hq_max):
    """Bit ``l`` set when ``((t*m + base) + e_max*wn) + hq_max*f > 0`` in float64 (no fused
    multiply-add), ``m = scale * f32(best - z)`` in fp32: the two-pass screen's arithmetic."""
    def codegen(context, builder, sig, args):
        best_addr, z_addr, scale, t_addr, base_addr, wn_addr, f_addr, e_max, hq_max = args

        def lanes(addr):
            return builder.load(pointer(builder, addr, _VD), align=8)
        c = builder.sub(builder.load(pointer(builder, best_addr, _VI), align=4),
                        builder.load(pointer(builder, z_addr, _VI), align=4))
        best = builder.fpext(builder.fmul(_splat(builder, scale, _VF), builder.sitofp(c, _VF)), _VD)
        x = builder.fadd(builder.fmul(lanes(t_addr), best), lanes(base_addr))
        x = builder.fadd(x, builder.fmul(_splat(builder, e_max, _VD), lanes(wn_addr)))
        x = builder.fadd(x, builder.fmul(_splat(builder, hq_max, _VD), lanes(f_addr)))
        positive = builder.fcmp_ordered(">", x, ir.Constant(_VD, [0.0] * BLOCK))
        return builder.zext(builder.bitcast(positive, ir.IntType(BLOCK)), I64)
    # the scale as fp32 whatever the caller passes (Numba returns fp32 scalars to Python as floats)
    return types.int64(best_addr, z_addr, types.float32, t_addr, base_addr, wn_addr, f_addr, e_max, hq_max), codegen


@njit(cache=True, nogil=True)
def _screen(a, s, zero_point, w, zero, t, base, wn, f, e_max, hq_max, out, cfg):
    """Candidates of ``a`` (u8 ``[L, K]``, K a multiple of 64; rows of one scale ``s``) into ``out``;
    returns their count.

    Two blocks of entries against two tiles of tokens at a time (tiles 4-7 accumulate): four
    independent products keep the tile unit busy while the next weights stream in."""
    n_rows, width = a.shape
    chunks = width // TILE_K
    full = n_rows // ROWS
    padded = np.full((ROWS, width), zero_point, np.uint8)  # the last, partial tile of tokens
    padded[:n_rows - full * ROWS] = a[full * ROWS:]
    c = np.empty(4 * ROWS * BLOCK, np.int32)
    best = np.empty(2 * BLOCK, np.int32)  # max over tokens of the u8 x s8 sums (before the zero point)
    n = 0
    tile_config(address(cfg, 0))
    for block in range(0, len(zero) // BLOCK, 2):
        best[:] = np.iinfo(np.int32).min
        for g in range(0, n_rows, 2 * ROWS):
            rows0 = min(n_rows - g, ROWS)
            rows1 = min(max(n_rows - g - ROWS, 0), ROWS)
            a0 = address(a, g * width) if rows0 == ROWS else address(padded, 0)
            a1 = address(a, (g + ROWS) * width) if rows1 == ROWS else address(padded, 0)
            tile_zero(4)
            tile_zero(5)
            tile_zero(6)
            tile_zero(7)
            for k in range(chunks):
                tile_load(2, address(w, (block * chunks + k) * B_TILE), BLOCK * 4)
                tile_load(3, address(w, ((block + 1) * chunks + k) * B_TILE), BLOCK * 4)
                tile_load(0, a0 + k * TILE_K, width)
                tile_dpbusd(4, 0, 2)
                tile_dpbusd(5, 0, 3)
                if rows1:
                    tile_load(1, a1 + k * TILE_K, width)
                    tile_dpbusd(6, 1, 2)
                    tile_dpbusd(7, 1, 3)
            tile_store(4, address(c, 0), BLOCK * 4)
            tile_store(5, address(c, ROWS * BLOCK), BLOCK * 4)
            _rows_max(address(c, 0), rows0, address(best, 0))
            _rows_max(address(c, ROWS * BLOCK), rows0, address(best, BLOCK))
            if rows1:
                tile_store(6, address(c, 2 * ROWS * BLOCK), BLOCK * 4)
                tile_store(7, address(c, 3 * ROWS * BLOCK), BLOCK * 4)
                _rows_max(address(c, 2 * ROWS * BLOCK), rows1, address(best, 0))
                _rows_max(address(c, 3 * ROWS * BLOCK), rows1, address(best, BLOCK))
        for half in range(2):
            j0 = (block + half) * BLOCK
            mask = _bound_mask(address(best, half * BLOCK), address(zero, j0), s, address(t, j0), address(base, j0),
                               address(wn, j0), address(f, j0), e_max, hq_max)
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
        blocks = -(-vocab // (2 * BLOCK)) * 2  # whole pairs of blocks (the kernel takes two at a time)
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

    def screen(self, a: np.ndarray, s: np.float32, e_max: float, hq_max: float, out: np.ndarray) -> int:
        """Candidates of the quantized rows ``a`` (from :meth:`inputs`) with scale ``s`` into ``out``."""
        return _screen(a, s, self.zero_point, self._w, self._zero, self._t, self._base, self._wn, self._f, e_max, hq_max, out,
                       self._cfg)
