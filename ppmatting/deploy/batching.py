"""One batching helper for every engine: network inputs queue per shape, run ``batch_size`` at a time.

Photos of the same padded size and the tiles of a tiled photo both go through
:class:`ShapeBatcher`. A batch holds inputs of one shape only: padding an input further to share
a batch with a larger one would change what the network sees at its border, so every result
equals the one-input result.
"""
import numpy as np


class ShapeBatcher:
    """Queue ``(key, img, trimap)`` per input shape; run a queue through ``run_fn`` when it holds
    ``batch_size`` items, and every queue on :meth:`flush`.

    Args:
        run_fn: ``run_fn(img, trimap) -> alpha``: img float32 N x 3 x H x W, trimap float32
            N x 1 x H x W, alpha float32 N x 1 x H x W (an engine's ``run``).
        batch_size: items per call (the last batch of a shape may be smaller).

    :meth:`add` and :meth:`flush` return the finished items as ``[(key, alpha 1 x 1 x H x W)]``
    in the order they were run. Memory holds at most ``batch_size`` items per distinct shape.
    """

    def __init__(self, run_fn, batch_size=1):
        self.run_fn = run_fn
        self.batch_size = max(1, int(batch_size))
        self._pending = {}

    def __len__(self):
        return sum(len(queue) for queue in self._pending.values())

    def add(self, key, img, trimap):
        """Queue one input (img 1 x 3 x H x W, trimap 1 x 1 x H x W)."""
        shape = tuple(img.shape[1:])
        queue = self._pending.setdefault(shape, [])
        queue.append((key, img, trimap))
        if len(queue) >= self.batch_size:
            return self._run(shape)
        return []

    def flush(self):
        """Run every partial batch."""
        finished = []
        for shape in list(self._pending):
            finished.extend(self._run(shape))
        return finished

    def _run(self, shape):
        items = self._pending.pop(shape)
        if len(items) == 1:  # no copy for the common batch of one
            img, trimap = items[0][1], items[0][2]
        else:
            img = np.concatenate([item[1] for item in items])
            trimap = np.concatenate([item[2] for item in items])
        alpha = self.run_fn(img, trimap)
        return [(item[0], alpha[row:row + 1]) for row, item in enumerate(items)]
