"""What the compiled kernels share: the measurement kind codes, the option that compiles the
inner loops without reference counting, and the fused multiply-add and 3-vector dot product
that the kernels' arithmetic is written with."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

RADAR_3D = 0
RADAR_2D = 1
ADSB = 2
_TWO_PI = 2.0 * np.pi
# The inner loops of the pair and snapshot kernels are compiled without numba's reference
# counting (the public kernel allocates, the ``*_core`` function computes): passing arrays to
# the inlined helpers would otherwise cost an atomic incref/decref per array per call, about a
# fifth of their time. ``_nrt`` is numba's own (underscored) option; without it they just run
# with reference counting.
try:
    from numba.core.options import DefaultOptions

    _NO_NRT = {"_nrt": False} if hasattr(DefaultOptions, "_nrt") else {}
except ImportError:  # pragma: no cover
    _NO_NRT = {}


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma``)."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 64 for t in (a, b, c)):
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, error_model="numpy", inline="always")
def _dot3(a0, a1, a2, b0, b1, b2):
    """``a0 b0 + a1 b1 + a2 b2`` accumulated in that order with fused multiply-adds, the way
    OpenBLAS's dgemm kernels (and so NumPy's ``@`` on float64) accumulate a length-3 product:
    the same number to the last bit as the NumPy formulation."""
    return _fma(a2, b2, _fma(a1, b1, a0 * b0))
