"""The training batch order: a pure function of (seed, epoch), sharded over processes.

Resuming at iteration k restarts epoch ``k // batches_per_epoch`` and skips its first
``k % batches_per_epoch`` batches without loading them, so a resumed run sees exactly the batches
a run that never stopped would have seen.
"""
import numpy as np


class EpochBatchSampler:
    """Batches of dataset indices for one process.

    Each epoch shuffles all indices with ``numpy.random.default_rng([seed, epoch])`` (the same
    permutation on every process), pads the list by wrapping around to a multiple of
    ``world_size``, gives process ``rank`` every ``world_size``-th index starting at ``rank`` (so the
    shards are disjoint and equally long), and cuts its shard into batches of ``batch_size``; an
    incomplete last batch is dropped so every iteration has the same batch size on every process.

    Args:
        num_samples: dataset length.
        batch_size: samples per batch on this process.
        seed: base of the shuffling generator.
        rank, world_size: this process's index and the number of processes.
        shuffle: False keeps the dataset order (useful in tests).
    """

    def __init__(self, num_samples, batch_size, seed=0, rank=0, world_size=1, shuffle=True):
        if num_samples <= 0:
            raise ValueError("the training dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self.skip_batches = 0

    @property
    def shard_size(self):
        return -(-self.num_samples // self.world_size)

    @property
    def batches_per_epoch(self):
        return self.shard_size // self.batch_size

    def set_epoch(self, epoch, skip_batches=0):
        """Select the epoch to iterate and how many of its first batches to skip (resume)."""
        self.epoch = int(epoch)
        self.skip_batches = int(skip_batches)

    def epoch_order(self, epoch):
        """All indices of ``epoch`` in training order (before sharding), int64."""
        if self.shuffle:
            return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_samples)
        return np.arange(self.num_samples)

    def shard(self, epoch):
        order = self.epoch_order(epoch)
        total = self.shard_size * self.world_size
        if total > order.size:
            order = np.concatenate([order, order[:total - order.size]])
        return order[self.rank::self.world_size]

    def __iter__(self):
        shard = self.shard(self.epoch)
        for batch in range(self.skip_batches, self.batches_per_epoch):
            start = batch * self.batch_size
            yield [int(i) for i in shard[start:start + self.batch_size]]

    def __len__(self):
        return max(0, self.batches_per_epoch - self.skip_batches)
