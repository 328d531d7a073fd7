"""Intel AMX int8 tiles from Numba: whether this process may use them, and the tile instructions.

AMX (Sapphire Rapids and later Xeons) multiplies 16x64 u8 by 64x16 s8 tiles into 16x16 int32 in one
instruction, about ten times the int8 throughput of AVX-512 VNNI. Numba has no AMX API, so the
instructions below are LLVM intrinsics emitted from ``numba.extending.intrinsic``; tile numbers are
literal arguments (the hardware names registers ``tmm0``-``tmm7``).

A process must ask Linux for the tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM)``) before its first
tile instruction, which would otherwise kill it with SIGILL: :func:`amx_int8_available` asks once
and is the only gate. A kernel configures the tiles itself (:func:`tile_config`) and releases them
before it returns (:func:`tile_release`): the tile state is per thread.
"""
from __future__ import annotations

import functools
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_SYS_ARCH_PRCTL = 158  # x86_64

I8, I32, I64, VOID = ir.IntType(8), ir.IntType(32), ir.IntType(64), ir.VoidType()
F32, F64 = ir.FloatType(), ir.DoubleType()
BYTE_PTR = I8.as_pointer()


@functools.lru_cache(maxsize=1)
def amx_int8_available() -> bool:
    """Whether Numba compiles for a CPU with AMX-TILE and AMX-INT8 and Linux granted this process the
    tile state. False under ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` (code compiled for other CPUs)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    from numba.core import config

    if config.CPU_NAME or config.CPU_FEATURES:
        return False
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    if not (features.get("amx-tile") and features.get("amx-int8")):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0


def tile_palette(rows: int = 16, bytes_per_row: int = 64):
    """The 64-byte ``ldtilecfg`` operand: palette 1, all eight tiles ``rows`` x ``bytes_per_row``."""
    import numpy as np

    cfg = np.zeros(64, np.uint8)
    cfg[0] = 1                                    # palette
    cfg[16:48].view("<u2")[:8] = bytes_per_row    # colsb[16]: bytes per row of tiles 0-7
    cfg[48:56] = rows                             # rows[16]
    return cfg


def _function(builder, name: str, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def pointer(builder, address, ty):
    """An int64 address as a pointer to ``ty`` (for intrinsics' code generation)."""
    return builder.inttoptr(address, ty.as_pointer())


def _literal(*values) -> bool:
    return all(isinstance(v, types.IntegerLiteral) for v in values)


@intrinsic
def address(typingctx, array, index):
    """The address (int64) of element ``index`` of a C-contiguous array, counted in memory order."""
    def codegen(context, builder, sig, args):
        data = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0]).data
        return builder.ptrtoint(builder.gep(data, [args[1]]), I64)
    return types.int64(array, types.intp), codegen


@intrinsic
def tile_config(typingctx, addr):
    """``ldtilecfg``: load the tile shapes (:func:`tile_palette`) at ``addr``."""
    def codegen(context, builder, sig, args):
        builder.call(_function(builder, "llvm.x86.ldtilecfg", VOID, [BYTE_PTR]), [pointer(builder, args[0], I8)])
    return types.void(addr), codegen


@intrinsic
def tile_release(typingctx):
    """``tilerelease``: back to the initial tile state."""
    def codegen(context, builder, sig, args):
        builder.call(_function(builder, "llvm.x86.tilerelease", VOID, []), [])
    return types.void(), codegen


def _tile_memory(name: str, llvm_name: str, doc: str):
    """An intrinsic ``op(tile, addr, stride)`` for a tile's move from or to memory, rows ``stride`` bytes apart."""
    def op(typingctx, tile, addr, stride):
        if not _literal(tile):
            return None

        def codegen(context, builder, sig, args):
            builder.call(_function(builder, llvm_name, VOID, [I8, BYTE_PTR, I64]),
                         [ir.Constant(I8, tile.literal_value), pointer(builder, args[1], I8), args[2]])
        return types.void(tile, addr, stride), codegen
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return intrinsic(prefer_literal=True)(op)


tile_load = _tile_memory("tile_load", "llvm.x86.tileloadd64", "``tileloadd``: tile ``tile`` from ``addr``.")
tile_store = _tile_memory("tile_store", "llvm.x86.tilestored64", "``tilestored``: tile ``tile`` to ``addr``.")


@intrinsic(prefer_literal=True)
def tile_zero(typingctx, tile):
    """``tilezero``."""
    if not _literal(tile):
        return None

    def codegen(context, builder, sig, args):
        builder.call(_function(builder, "llvm.x86.tilezero", VOID, [I8]), [ir.Constant(I8, tile.literal_value)])
    return types.void(tile), codegen


@intrinsic(prefer_literal=True)
def tile_dpbusd(typingctx, dst, a, b):
    """``tdpbusd``: ``dst += a (u8, rows x 4k) . b (s8, k rows of 4-byte groups)``, exact int32 sums."""
    if not _literal(dst, a, b):
        return None

    def codegen(context, builder, sig, args):
        builder.call(_function(builder, "llvm.x86.tdpbusd", VOID, [I8, I8, I8]),
                     [ir.Constant(I8, t.literal_value) for t in (dst, a, b)])
    return types.void(dst, a, b), codegen
