"""numba kernels of :mod:`ppmatting.ml.multifrontal` (compiled on first use, cached on disk).

Imported only when a multifrontal factorisation runs, never at ``import ppmatting``. Dense work
goes to the LAPACK/BLAS that SciPy ships (``potrf``, ``trsm``, ``syrk``), reached through
``scipy.linalg.cython_lapack`` / ``cython_blas`` function addresses registered as named symbols, so
numba can cache the compiled code (a ctypes pointer would not be cacheable).

Conventions: a front is a C-ordered f x f array whose lower triangle (row >= column) holds the
symmetric matrix. Read column-major by Fortran it is the upper triangle of the same matrix, which
is how the LAPACK/BLAS calls below see it.
"""
import llvmlite.binding as llvm_binding
import numba
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

_ROUTINES = {
    "potrf": "scipy.linalg.cython_lapack",
    "trsm": "scipy.linalg.cython_blas",
    "syrk": "scipy.linalg.cython_blas",
}
for _name, _module in _ROUTINES.items():
    for _prefix in ("s", "d"):
        llvm_binding.add_symbol(f"ppmatting_{_prefix}{_name}",
                                get_cython_function_address(_module, _prefix + _name))

_VP = types.voidptr
_potrf = {p: types.ExternalFunction(f"ppmatting_{p}potrf", types.void(*[_VP] * 5)) for p in "sd"}
_trsm = {p: types.ExternalFunction(f"ppmatting_{p}trsm", types.void(*[_VP] * 11)) for p in "sd"}
_syrk = {p: types.ExternalFunction(f"ppmatting_{p}syrk", types.void(*[_VP] * 10)) for p in "sd"}
spotrf, dpotrf = _potrf["s"], _potrf["d"]
strsm, dtrsm = _trsm["s"], _trsm["d"]
ssyrk, dsyrk = _syrk["s"], _syrk["d"]

# return codes of factor_numeric
OK = 0
NOT_POSITIVE_DEFINITE = 1

# First-run compile time: these kernels compile on the first closed-form solve after installation
# (the demo's first run waits for it). Slice assignments between arrays (``a[i:j] = b[k:l]``) make
# numba compile its shape-mismatch error, which formats the shapes into a string and pulls in its
# whole string library (about 3 s of compiling on a quiet 2-core machine, measured), and
# ``np.sort`` compiles a generic quicksort; so copies below are loops and the one sort is a heap
# sort of our own.


@numba.njit(cache=True)
def heap_sort(values):
    """Sort ``values`` ascending, in place (heap sort: build the heap, then move its top out)."""
    start, end = values.size // 2, values.size
    while end > 1:
        if start > 0:  # building the heap
            start -= 1
        else:  # the largest left goes to the end
            end -= 1
            values[0], values[end] = values[end], values[0]
        root = start
        while True:  # sift values[root] down
            child = 2 * root + 1
            if child >= end:
                break
            if child + 1 < end and values[child] < values[child + 1]:
                child += 1
            if values[root] >= values[child]:
                break
            values[root], values[child] = values[child], values[root]
            root = child


@numba.njit(cache=True)
def nested_dissection(ys, xs, reach, leaf_size, balance, imbalance_weight):
    """Geometric nested dissection of pixels at (ys, xs) whose couplings reach at most ``reach``
    pixels in y and in x. Returns, in elimination order (children before parents):
    ``perm`` (pixel index of each eliminated variable), ``own_lo``, ``own_hi`` (the node's
    variables are perm[own_lo:own_hi]), ``child_a``, ``child_b`` (node numbers, -1 for none)."""
    n = ys.size
    work = np.arange(n)
    scratch = np.empty(n, np.int64)
    cap = 2 * n + 16  # every cut leaves both sides non-empty: at most 2n - 1 nodes
    lo_of = np.empty(cap, np.int64)
    hi_of = np.empty(cap, np.int64)
    own_lo_of = np.empty(cap, np.int64)
    left_of = np.full(cap, -1, np.int64)
    right_of = np.full(cap, -1, np.int64)
    lo_of[0], hi_of[0] = 0, n
    count = 1
    todo = np.empty(cap, np.int64)
    todo[0] = 0
    n_todo = 1
    while n_todo > 0:
        n_todo -= 1
        node = todo[n_todo]
        lo, hi = lo_of[node], hi_of[node]
        own_lo_of[node] = lo
        if hi - lo <= leaf_size:
            continue
        y_min, y_max, x_min, x_max = ys[work[lo]], ys[work[lo]], xs[work[lo]], xs[work[lo]]
        for t in range(lo, hi):
            y, x = ys[work[t]], xs[work[t]]
            y_min, y_max = min(y_min, y), max(y_max, y)
            x_min, x_max = min(x_min, x), max(x_max, x)
        # the cut: the reach-wide strip with the fewest pixels, across either axis, among cuts
        # that leave each side at least BALANCE of the node's pixels
        best_cost, cut, use_y = np.inf, -1, True
        size = hi - lo
        for axis in range(2):
            c_min, c_max = (y_min, y_max) if axis == 0 else (x_min, x_max)
            span = c_max - c_min + 1
            if span < reach + 2:
                continue
            counts = np.zeros(span + 1, np.int64)
            for t in range(lo, hi):
                counts[1 + (ys[work[t]] if axis == 0 else xs[work[t]]) - c_min] += 1
            for c in range(1, span + 1):
                counts[c] += counts[c - 1]          # counts[c] = pixels with coordinate < c_min + c
            for c in range(1, span - reach):
                n_left = counts[c]
                n_right = size - counts[c + reach]
                if min(n_left, n_right) < balance * size:
                    continue
                cost = (counts[c + reach] - counts[c]) * (1.0 + imbalance_weight * abs(n_left - n_right) / size)
                if cost < best_cost:
                    best_cost, cut, use_y = cost, c_min + c, axis == 0
        if cut < 0:
            continue  # too narrow or too lopsided to cut: a leaf
        coords = np.empty(hi - lo, np.int64)
        for t in range(lo, hi):
            coords[t - lo] = ys[work[t]] if use_y else xs[work[t]]
        n_left = n_right = 0
        for t in range(hi - lo):
            if coords[t] < cut:
                n_left += 1
            elif coords[t] >= cut + reach:
                n_right += 1
        i_left, i_right, i_sep = lo, lo + n_left, lo + n_left + n_right
        for t in range(hi - lo):
            c = coords[t]
            if c < cut:
                scratch[i_left] = work[lo + t]
                i_left += 1
            elif c >= cut + reach:
                scratch[i_right] = work[lo + t]
                i_right += 1
            else:
                scratch[i_sep] = work[lo + t]
                i_sep += 1
        for t in range(lo, hi):
            work[t] = scratch[t]
        left, right = count, count + 1
        count += 2
        lo_of[left], hi_of[left] = lo, lo + n_left
        lo_of[right], hi_of[right] = lo + n_left, lo + n_left + n_right
        left_of[node], right_of[node] = left, right
        own_lo_of[node] = lo + n_left + n_right
        todo[n_todo] = left
        todo[n_todo + 1] = right
        n_todo += 2
    # postorder (left subtree, right subtree, node): the elimination order
    order = np.empty(count, np.int64)
    stack = np.empty(2 * count + 2, np.int64)
    expanded = np.zeros(count, np.bool_)
    stack[0] = 0
    depth = 1
    n_order = 0
    while depth > 0:
        node = stack[depth - 1]
        if left_of[node] >= 0 and not expanded[node]:
            expanded[node] = True
            stack[depth] = right_of[node]
            stack[depth + 1] = left_of[node]
            depth += 2
        else:
            depth -= 1
            order[n_order] = node
            n_order += 1
    rank = np.empty(count, np.int64)
    for t in range(count):
        rank[order[t]] = t
    own_lo = np.empty(count, np.int64)
    own_hi = np.empty(count, np.int64)
    child_a = np.full(count, -1, np.int64)
    child_b = np.full(count, -1, np.int64)
    for t in range(count):
        node = order[t]
        own_lo[t], own_hi[t] = own_lo_of[node], hi_of[node]
        if left_of[node] >= 0:
            child_a[t], child_b[t] = rank[left_of[node]], rank[right_of[node]]
    return work, own_lo, own_hi, child_a, child_b


@numba.njit(cache=True)
def factor_symbolic(indptr, indices, own_lo, own_hi, child_a, child_b):
    """Boundary (update) index sets of every front, from the permuted symmetric pattern.

    Returns ``(ok, bnd_ptr, bnd_idx, fac_ptr, stack_need, front_max)``; ``ok`` is False when the
    pattern couples two subtrees that the dissection separated (the ordering does not fit the
    matrix)."""
    n_nodes = own_lo.size
    n = indptr.size - 1
    mark = np.full(n, -1, np.int64)
    bnd_ptr = np.zeros(n_nodes + 1, np.int64)
    fac_ptr = np.zeros(n_nodes + 1, np.int64)
    bnd_idx = np.empty(max(4 * n, 16), np.int64)
    found = np.empty(n, np.int64)
    update_at = np.zeros(n_nodes, np.int64)
    top = 0
    stack_need = 0
    front_max = 0
    for node in range(n_nodes):
        lo, hi = own_lo[node], own_hi[node]
        count = 0
        for child in (child_a[node], child_b[node]):
            if child < 0:
                continue
            for p in range(bnd_ptr[child], bnd_ptr[child + 1]):
                g = bnd_idx[p]
                if g < lo:
                    return False, bnd_ptr, bnd_idx, fac_ptr, 0, 0
                if g >= hi and mark[g] != node:
                    mark[g] = node
                    found[count] = g
                    count += 1
        for i in range(lo, hi):
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if j >= hi and mark[j] != node:
                    mark[j] = node
                    found[count] = j
                    count += 1
        start = bnd_ptr[node]
        if start + count > bnd_idx.size:
            grown = np.empty(2 * (start + count), np.int64)
            for t in range(start):
                grown[t] = bnd_idx[t]
            bnd_idx = grown
        heap_sort(found[:count])
        for t in range(count):
            bnd_idx[start + t] = found[t]
        bnd_ptr[node + 1] = start + count
        n_own = hi - lo
        front = n_own + count
        front_max = max(front_max, front)
        fac_ptr[node + 1] = fac_ptr[node] + front * n_own
        # the update stack: children's updates are popped, this node's is pushed
        if child_a[node] >= 0:
            top = update_at[child_a[node]]
        update_at[node] = top
        top += count * count
        stack_need = max(stack_need, top)
    return True, bnd_ptr, bnd_idx[:bnd_ptr[n_nodes]].copy(), fac_ptr, stack_need, front_max


@numba.njit(cache=True)
def factor_numeric(indptr, indices, data, own_lo, own_hi, child_a, child_b, bnd_ptr, bnd_idx,
                   fac_ptr, factor, stack, front_buffer, single):
    """Multifrontal Cholesky ``A = L L^T`` of the permuted matrix (CSR ``indptr, indices, data``,
    both triangles). Fills ``factor`` (per node, the f x n_own block [L11; L21], C order) and
    returns (code, failing node)."""
    n = indptr.size - 1
    loc = np.empty(n, np.int64)
    update_at = np.zeros(own_lo.size, np.int64)
    top = 0
    one = np.ones(1, factor.dtype)
    minus_one = -np.ones(1, factor.dtype)
    side_uplo_trans_diag = np.array([ord("L"), ord("U"), ord("T"), ord("N")], np.uint8)
    dims = np.zeros(4, np.int32)   # n_own, n_bnd, front (lda), info
    for node in range(own_lo.size):
        lo, hi = own_lo[node], own_hi[node]
        n_own = hi - lo
        b0, b1 = bnd_ptr[node], bnd_ptr[node + 1]
        n_bnd = b1 - b0
        f = n_own + n_bnd
        front = front_buffer[:f * f].reshape(f, f)
        front[:, :] = 0.0
        for t in range(n_own):
            loc[lo + t] = t
        for t in range(n_bnd):
            loc[bnd_idx[b0 + t]] = n_own + t
        for i in range(lo, hi):
            li = loc[i]
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if j >= i:
                    front[loc[j], li] += data[p]
        # extend-add the children's updates (right child's is on top of the stack)
        for child in (child_b[node], child_a[node]):
            if child < 0:
                continue
            c0, c1 = bnd_ptr[child], bnd_ptr[child + 1]
            m = c1 - c0
            base = update_at[child]
            for p in range(m):
                row = front[loc[bnd_idx[c0 + p]]]
                src = base + p * m
                for q in range(p + 1):
                    row[loc[bnd_idx[c0 + q]]] += stack[src + q]
            top = base
        dims[0], dims[1], dims[2], dims[3] = n_own, n_bnd, f, 0
        flat = front_buffer[:f * f]
        if n_own > 0:
            if single:
                spotrf(side_uplo_trans_diag[1:].ctypes, dims[0:].ctypes, flat.ctypes,
                       dims[2:].ctypes, dims[3:].ctypes)
            else:
                dpotrf(side_uplo_trans_diag[1:].ctypes, dims[0:].ctypes, flat.ctypes,
                       dims[2:].ctypes, dims[3:].ctypes)
            if dims[3] != 0:
                return NOT_POSITIVE_DEFINITE, node
            if n_bnd > 0:
                # Fortran view: G12 := U^-T G12 (G11 = U^T U), then G22 -= G12^T G12
                g12 = flat[n_own * f:]
                g22 = flat[n_own * f + n_own:]
                if single:
                    strsm(side_uplo_trans_diag[0:].ctypes, side_uplo_trans_diag[1:].ctypes,
                          side_uplo_trans_diag[2:].ctypes, side_uplo_trans_diag[3:].ctypes,
                          dims[0:].ctypes, dims[1:].ctypes, one.ctypes, flat.ctypes,
                          dims[2:].ctypes, g12.ctypes, dims[2:].ctypes)
                    ssyrk(side_uplo_trans_diag[1:].ctypes, side_uplo_trans_diag[2:].ctypes,
                          dims[1:].ctypes, dims[0:].ctypes, minus_one.ctypes, g12.ctypes,
                          dims[2:].ctypes, one.ctypes, g22.ctypes, dims[2:].ctypes)
                else:
                    dtrsm(side_uplo_trans_diag[0:].ctypes, side_uplo_trans_diag[1:].ctypes,
                          side_uplo_trans_diag[2:].ctypes, side_uplo_trans_diag[3:].ctypes,
                          dims[0:].ctypes, dims[1:].ctypes, one.ctypes, flat.ctypes,
                          dims[2:].ctypes, g12.ctypes, dims[2:].ctypes)
                    dsyrk(side_uplo_trans_diag[1:].ctypes, side_uplo_trans_diag[2:].ctypes,
                          dims[1:].ctypes, dims[0:].ctypes, minus_one.ctypes, g12.ctypes,
                          dims[2:].ctypes, one.ctypes, g22.ctypes, dims[2:].ctypes)
        out = fac_ptr[node]
        for r in range(f):
            for c in range(min(r + 1, n_own)):
                factor[out + r * n_own + c] = front[r, c]
        update_at[node] = top
        for p in range(n_bnd):
            for q in range(p + 1):
                stack[top + p * n_bnd + q] = front[n_own + p, n_own + q]
        top += n_bnd * n_bnd
    return OK, -1


@numba.njit(cache=True)
def solve_factored(factor, fac_ptr, own_lo, own_hi, bnd_ptr, bnd_idx, rhs):
    """``L L^T x = rhs`` in the permuted order (float64 accumulation)."""
    x = rhs.astype(np.float64)
    n_nodes = own_lo.size
    for node in range(n_nodes):
        lo, n_own = own_lo[node], own_hi[node] - own_lo[node]
        b0, n_bnd = bnd_ptr[node], bnd_ptr[node + 1] - bnd_ptr[node]
        base = fac_ptr[node]
        for r in range(n_own):
            s = x[lo + r]
            row = base + r * n_own
            for c in range(r):
                s -= factor[row + c] * x[lo + c]
            x[lo + r] = s / factor[row + r]
        for t in range(n_bnd):
            row = base + (n_own + t) * n_own
            s = 0.0
            for c in range(n_own):
                s += factor[row + c] * x[lo + c]
            x[bnd_idx[b0 + t]] -= s
    for node in range(n_nodes - 1, -1, -1):
        lo, n_own = own_lo[node], own_hi[node] - own_lo[node]
        b0, n_bnd = bnd_ptr[node], bnd_ptr[node + 1] - bnd_ptr[node]
        base = fac_ptr[node]
        for t in range(n_bnd):
            row = base + (n_own + t) * n_own
            xg = x[bnd_idx[b0 + t]]
            for c in range(n_own):
                x[lo + c] -= factor[row + c] * xg
        for r in range(n_own - 1, -1, -1):
            row = base + r * n_own
            x[lo + r] /= factor[row + r]
            xr = x[lo + r]
            for c in range(r):
                x[lo + c] -= factor[row + c] * xr
    return x


@numba.njit(cache=True)
def permute_symmetric(indptr, indices, data, perm):
    """CSR of ``P A P^T`` (row t = row perm[t] of A, columns renamed by the inverse of perm);
    the columns of a row keep A's order (the kernels here do not need them sorted)."""
    n = perm.size
    inverse = np.empty(n, np.int64)
    for t in range(n):
        inverse[perm[t]] = t
    out_ptr = np.zeros(n + 1, np.int64)
    for t in range(n):
        out_ptr[t + 1] = out_ptr[t] + indptr[perm[t] + 1] - indptr[perm[t]]
    out_idx = np.empty(out_ptr[n], np.int64)
    out_val = np.empty(out_ptr[n], np.float64)
    for t in range(n):
        src = indptr[perm[t]]
        dst = out_ptr[t]
        for p in range(indptr[perm[t] + 1] - src):
            out_idx[dst + p] = inverse[indices[src + p]]
            out_val[dst + p] = data[src + p]
    return out_ptr, out_idx, out_val
