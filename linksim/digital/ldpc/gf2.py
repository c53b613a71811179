"""Dense linear algebra over GF(2) on bit-packed numpy arrays (small helpers for the encoders).

Rows are packed with :func:`numpy.packbits` (8 columns per byte), so one row operation
is a byte-wise XOR; eliminating a 972 x 1944 system takes well under a second.

Example
-------
>>> import numpy as np
>>> from linksim.digital.ldpc.gf2 import gf2_rank
>>> gf2_rank(np.array([[1, 1], [1, 1]], dtype=np.uint8))
1
"""

from __future__ import annotations

import numpy as np


def _bit(packed: np.ndarray, col: int) -> np.ndarray:
    """Column ``col`` of a row-packed bit matrix, as a bool vector."""
    return ((packed[:, col >> 3] >> (7 - (col & 7))) & 1).astype(bool)


def gf2_row_reduce(a: np.ndarray, ncols: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Reduced row echelon form over GF(2).

    :param a: [m, n] array of 0/1 (any integer or bool dtype).
    :param ncols: Eliminate on the first ``ncols`` columns only (default: all n).
    :output rref: [m, n] `uint8`, the reduced matrix (pivot rows first).
    :output pivots: Column index of each pivot, in row order.
    """
    a = np.asarray(a, dtype=np.uint8) & 1
    m, n = a.shape
    ncols = n if ncols is None else ncols
    p = np.packbits(a, axis=1)
    pivots: list[int] = []
    row = 0
    for col in range(ncols):
        if row == m:
            break
        colbits = _bit(p, col)
        cand = np.flatnonzero(colbits[row:])
        if cand.size == 0:
            continue
        piv = row + cand[0]
        if piv != row:
            p[[row, piv]] = p[[piv, row]]
            colbits[[row, piv]] = colbits[[piv, row]]
        colbits[row] = False
        targets = np.flatnonzero(colbits)
        if targets.size:
            p[targets] ^= p[row]
        pivots.append(col)
        row += 1
    return np.unpackbits(p, axis=1, count=n), pivots


def gf2_rank(a: np.ndarray) -> int:
    """Rank of a 0/1 matrix over GF(2)."""
    return len(gf2_row_reduce(a)[1])


def gf2_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``a @ x = b (mod 2)`` for a square invertible ``a``.

    :param a: [m, m] 0/1 matrix, invertible over GF(2).
    :param b: [m, r] 0/1 right-hand sides.
    :output x: [m, r] `uint8`.
    :raises numpy.linalg.LinAlgError: If ``a`` is singular over GF(2).
    """
    a = np.asarray(a, dtype=np.uint8)
    m = a.shape[0]
    if a.shape != (m, m):
        raise ValueError(f"a must be square, got {a.shape}")
    rref, pivots = gf2_row_reduce(np.concatenate([a, np.asarray(b, dtype=np.uint8)], axis=1), ncols=m)
    if len(pivots) != m:
        raise np.linalg.LinAlgError(f"matrix is singular over GF(2) (rank {len(pivots)} < {m})")
    return rref[:, m:]
