"""The spatial size of a feature map, in a form that also works after ``paddle.jit.to_static``.

In dygraph ``x.shape`` holds Python ints. In a static graph exported with dynamic height and width
it holds -1, so the size must come from ``paddle.shape(x)`` (a tensor) for the unpool / resize ops
to follow the actual input at inference time.
"""
import paddle


def spatial_size(reference):
    """[H, W] of an N x C x H x W tensor: ints in dygraph, 0-d int tensors in a static graph."""
    if paddle.in_dynamic_mode():
        return list(reference.shape[2:4])
    shape = paddle.shape(reference)
    return [shape[2], shape[3]]
