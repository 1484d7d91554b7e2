"""2x2 max-unpooling, two ways that give the same tensor.

The paper's decoder puts each decoder value back at the position its encoder window's maximum came
from (max-unpooling with the max-pool indices).

* :func:`unpool_with_indices`: Paddle's ``max_unpool2d`` with the encoder's pool indices. One
  scatter: the fast one in dygraph and in Paddle Inference (fp32 and bf16).
* :func:`unpool_like_max_pool`: the same result from operators every exporter converts. Paddle's
  ``max_unpool2d`` (``pd_op.unpool``) has no paddle2onnx 2.1.0 converter, and paddle2onnx turns
  ``max_pool2d(return_mask=True)`` into an ONNX ``MaxPool`` without its indices output, so neither
  the op nor its indices reach ONNX.

:func:`unpool_like_max_pool` finds the maximum of each 2x2 window again, from the encoder's
pre-pool feature itself (the tensor the indices were taken from), with the same tie rule as Paddle's
max-pool kernel: the first maximum in row-major order wins (top-left, top-right, bottom-left,
bottom-right). The result is bit-for-bit the result of ``max_unpool2d(x, indices, 2, 2,
output_size=skip size)`` (tests/test_onnx.py checks it on random inputs with many exact ties); it
uses only strided slicing, ``maximum``, comparisons, multiplication, subtraction, ``stack``,
``pixel_shuffle`` and ``pad`` (ONNX: Slice, Max, GreaterOrEqual, Cast, Mul, Sub, Concat, Reshape,
DepthToSpace, Pad), so dygraph, the Paddle Inference graph and the ONNX graph run the same
computation.

It costs several memory passes over each decoder level where the scatter makes about two, which in
Paddle Inference made the whole paper network about 1.3-2x slower in fp32 and 2-3.5x slower in
bf16 (docs/deploy.md), so :class:`~ppmatting.models.decoders.PlainDecoder` uses it only for the
graph that goes to ONNX (``portable_unpool``; :func:`portable_unpooling`).
"""
import contextlib

import paddle
import paddle.nn.functional as F

from ppmatting.models.decoders.spatial import spatial_size


def unpool_with_indices(x, indices, skip):
    """Paddle's 2x2 ``max_unpool2d`` of ``x`` with ``indices`` (from
    ``F.max_pool2d(skip, 2, 2, return_mask=True)``) to exactly ``skip``'s height and width.

    Giving the pre-pool size (instead of 2 x the pooled size) keeps odd sizes right and lets an
    exported graph take any input size.
    """
    return F.max_unpool2d(x, indices, kernel_size=2, stride=2, output_size=spatial_size(skip))


def unpool_like_max_pool(x, skip):
    """2x2 max-unpooling of ``x`` to ``skip``'s size, at the positions of ``skip``'s window maxima.

    Args:
        x: float tensor N x C x h x w (the decoder feature at the pooled size).
        skip: float tensor N x C x H x W with h = H // 2 and w = W // 2: the encoder feature before
            the pooling whose indices the paper's decoder unpools with.

    Returns N x C x H x W: ``x[n, c, i, j]`` at the (first) maximum of window (i, j) of ``skip``,
    zero elsewhere, and zero in the last row / column when H or W is odd (no window covers it).
    Equal to ``F.max_unpool2d(x, indices, 2, 2, output_size=[H, W])`` with ``indices`` from
    ``F.max_pool2d(skip, 2, 2, return_mask=True)``.

    Ties go to the earlier element in row-major order (top-left, top-right, bottom-left,
    bottom-right), as in Paddle's and PyTorch's max-pool kernels, whose comparison is a strict
    ``>``; ties are common (ReLU zeros, flat image regions), so this rule matters.
    """
    h, w = spatial_size(x)
    height, width = spatial_size(skip)
    # the four elements of every window (pooling floors odd sizes: the last row/column is unused)
    top_left = skip[:, :, 0:2 * h:2, 0:2 * w:2]
    top_right = skip[:, :, 0:2 * h:2, 1:2 * w:2]
    bottom_left = skip[:, :, 1:2 * h:2, 0:2 * w:2]
    bottom_right = skip[:, :, 1:2 * h:2, 1:2 * w:2]
    bottom_max = paddle.maximum(bottom_left, bottom_right)
    # Hand x to the first element that is the window's maximum, then subtract what was handed out
    # (x - x = 0 and x - 0 = x exactly), so every window gets x exactly once.
    at_tl = x * (top_left >= paddle.maximum(top_right, bottom_max)).astype(x.dtype)
    rest = x - at_tl
    at_tr = rest * (top_right >= bottom_max).astype(x.dtype)
    rest = rest - at_tr
    at_bl = rest * (bottom_left >= bottom_right).astype(x.dtype)
    at_br = rest - at_bl
    # channel c*4 + k holds window element k, as pixel_shuffle expects: N x C x 2h x 2w
    quads = paddle.reshape(paddle.stack([at_tl, at_tr, at_bl, at_br], axis=2),
                           [0, x.shape[1] * 4, h, w])
    whole = F.pixel_shuffle(quads, 2)
    return F.pad(whole, [0, width - 2 * w, 0, height - 2 * h])


@contextlib.contextmanager
def portable_unpooling(model):
    """Within this block every decoder of ``model`` with a ``portable_unpool`` switch unpools with
    :func:`unpool_like_max_pool` (to trace the graph that goes to ONNX); restored afterwards.
    Yields the number of decoders switched (0 for PaddleSeg's, which does not unpool)."""
    decoders = [layer for layer in [model] + list(model.sublayers())
                if hasattr(layer, "portable_unpool")]
    saved = [layer.portable_unpool for layer in decoders]
    for layer in decoders:
        layer.portable_unpool = True
    try:
        yield len(decoders)
    finally:
        for layer, value in zip(decoders, saved):
            layer.portable_unpool = value
