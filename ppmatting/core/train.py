"""The iteration-based trainer behind ``tools/train.py``.

One iteration: load a batch (``reader_cost``), forward, every configured loss, a finite check,
backward (gradients all-reduced across processes by ``paddle.DataParallel``), optimiser step, lr
step. Every ``log_iters`` it logs each loss term, lr, batch_cost, reader_cost, images/s and ETA;
every ``save_interval`` (and at the end) it writes an atomic checkpoint, optionally evaluates and
keeps ``best_model/`` by SAD.

One call trains one config; DIM's three stages are three calls made by
:mod:`ppmatting.core.stages` (``settings.stage`` then says which stage this is, for the logs, the
checkpoints' ``train_state.json`` and VisualDL).

Exact resume: the batch order is a function of (seed, epoch) (:class:`EpochBatchSampler`), each
sample a function of (dataset seed, epoch, index) (``MattingDataset.set_epoch``), and a checkpoint
holds the model, optimiser (with its lr-scheduler state), iteration, RNG states and best metric,
so N iterations straight and N/2 + resume + N/2 end with the same weights.

Many processes (``python -m paddle.distributed.launch --nproc_per_node N tools/train.py ...``):
each process trains on its shard of every epoch with ``batch_size`` samples per iteration; only
rank 0 logs, evaluates and saves. At the end the ranks compare their weights.
"""
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ppmatting.core import checkpoint as ckpt
from ppmatting.core.sampler import EpochBatchSampler
from ppmatting.core.train_log import EVAL_LOG, TRAIN_LOG, StageInfo, TrainLogger, format_seconds
from ppmatting.utils.errors import ConfigError, PPMattingError

PRECISIONS = ("fp32", "fp16", "bf16")
BEST_DIR = "best_model"
BEST_METRIC = "sad"  # lower is better
SUMMARY_FILE = "train_summary.json"


class TrainingDivergedError(PPMattingError):
    """A loss term became NaN or infinite; nothing was saved for that iteration."""


@dataclass
class TrainSettings:
    """Everything the loop needs besides the model, data, losses and optimiser.

    iters: total iterations (a resumed run continues up to this number).
    batch_size: samples per iteration *per process*.
    save_dir: where ``iter_N/``, ``best_model/`` and the logs go.
    save_interval: checkpoint (and evaluate, with ``do_eval``) every this many iterations and at
        the end.
    keep_checkpoint_max: keep at most this many ``iter_N/`` folders (<= 0: all).
    log_iters: log every this many iterations.
    num_workers: data-loader worker processes (0: load in the training process).
    seed: batch order and (when the tool passes it on) model initialisation and augmentation.
    frozen: sub-layer names (``backbone``, ``decoder``) kept frozen: no gradients, eval mode.
    precision: 'fp32', or 'fp16'/'bf16' mixed precision where Paddle supports it on the device.
    resume_model: a checkpoint folder to continue from.
    progress_bar: 'auto' (when stderr is a terminal), 'on' or 'off'.
    stage: a :class:`~ppmatting.core.train_log.StageInfo` when this run is one stage of several.
    extra_state: JSON values stored in every checkpoint's ``train_state.json`` (the stage runner
        keeps the run's seed there, to derive the later stages' seeds on resume).
    """
    iters: int
    batch_size: int = 1
    save_dir: str = "output"
    save_interval: int = 1000
    keep_checkpoint_max: int = 5
    log_iters: int = 10
    num_workers: int = 0
    seed: int = 0
    do_eval: bool = False
    use_vdl: bool = False
    frozen: Sequence[str] = field(default_factory=tuple)
    precision: str = "fp32"
    resume_model: Optional[str] = None
    progress_bar: str = "auto"
    stage: Optional[StageInfo] = None
    extra_state: dict = field(default_factory=dict)

    def validate(self):
        for name in ("iters", "batch_size", "save_interval", "log_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"--{name}: expected a positive integer, got {value!r}")
        if self.num_workers < 0:
            raise ConfigError(f"--num_workers: expected 0 or more, got {self.num_workers}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision: expected one of {', '.join(PRECISIONS)}, "
                              f"got {self.precision!r}")
        if self.progress_bar not in ("auto", "on", "off"):
            raise ConfigError(f"--progress_bar: expected auto, on or off, got {self.progress_bar!r}")


# ---- processes -----------------------------------------------------------------------------------
def distributed_env():
    """``(rank, world_size)`` from the environment ``paddle.distributed.launch`` sets."""
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)
    return rank, world


_PARALLEL_READY = False


def init_distributed():
    """Initialise the process group once (gloo on CPU, NCCL on GPU). Returns (rank, world_size)."""
    global _PARALLEL_READY
    rank, world = distributed_env()
    if world > 1 and not _PARALLEL_READY:
        import paddle.distributed as dist
        dist.init_parallel_env()
        _PARALLEL_READY = True
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world


class RankZeroGate:
    """Make the other processes wait while rank 0 saves and evaluates.

    A gloo barrier times out after about 30 seconds (Paddle gives it no longer timeout), and an
    evaluation or a large checkpoint takes longer on a CPU. So the other ranks poll a counter in
    the launcher's TCP store (no collective in flight, no timeout) until rank 0 raises it. The
    store lives as long as the launch: ``tag`` keeps the counters of successive stages apart.
    """

    def __init__(self, rank, world, poll_seconds=0.2, tag="run"):
        self.rank, self.world, self.poll_seconds = rank, world, poll_seconds
        self.tag = tag
        self.count = 0
        self.store = None
        if world > 1:
            from paddle.base import core
            self.store = core.create_or_get_global_tcp_store()

    def pass_through(self):
        """Rank 0: open the gate. Others: wait until rank 0 has opened it."""
        if self.store is None:
            return
        self.count += 1
        key = f"ppmatting/train/{self.tag}/rank0_done/{self.count}"
        if self.rank == 0:
            self.store.add(key, 1)
            return
        while self.store.add(key, 0) < 1:
            time.sleep(self.poll_seconds)


def seed_everything(seed):
    """Seed Paddle, NumPy and Python's ``random`` (call before building the model)."""
    import random

    import paddle
    paddle.seed(int(seed))
    np.random.seed(int(seed) % (2 ** 32))
    random.seed(int(seed))


# ---- frozen parts --------------------------------------------------------------------------------
def resolve_sublayer(model, dotted):
    layer = model
    for part in str(dotted).split("."):
        child = getattr(layer, part, None)
        if child is None or not hasattr(child, "parameters"):
            names = [name for name, _ in model.named_children()]
            raise ConfigError(f"train.frozen: the model has no sub-layer '{dotted}' "
                              f"(its parts: {', '.join(names)})")
        layer = child
    return layer


def freeze(model, names):
    """Stop gradients for the named sub-layers; returns the frozen layers (to keep in eval mode)."""
    layers = []
    for name in names or ():
        layer = resolve_sublayer(model, name)
        for param in layer.parameters():
            param.stop_gradient = True
        layers.append(layer)
    return layers


def set_train_mode(model, frozen_layers):
    """``model.train()`` except the frozen parts, which stay in eval mode (their batch norms keep
    the statistics they were trained with)."""
    model.train()
    for layer in frozen_layers:
        layer.eval()


def trainable_parameters(model):
    return [p for p in model.parameters() if not p.stop_gradient]


def count_parameters(params):
    return int(sum(int(np.prod(p.shape)) for p in params))


# ---- precision -----------------------------------------------------------------------------------
def check_precision(precision):
    """Raise a one-line error when mixed precision cannot run on this device.

    Paddle 3's ``auto_cast`` only takes effect on CUDA, XPU and custom devices (on CPU it warns and
    does nothing), and its CPU conv2d kernels exist for float32/float64 only, so bf16/fp16 training
    on CPU is not possible.
    """
    import paddle
    if precision == "fp32":
        return
    device = paddle.get_device()
    if device.startswith("cpu"):
        raise ConfigError(f"--precision {precision}: Paddle runs mixed precision only on GPU, XPU or "
                          f"custom devices (its CPU conv2d kernels are float32/float64); this "
                          f"process runs on {device}: use --precision fp32")
    if precision == "bf16" and device.startswith("gpu"):
        capability = paddle.device.cuda.get_device_capability()
        if capability[0] < 8:
            raise ConfigError(f"--precision bf16 needs a GPU of compute capability 8.0 or newer "
                              f"(this one is {capability[0]}.{capability[1]}); use fp16")


# ---- evaluation ----------------------------------------------------------------------------------
def evaluate_model(model, val_dataset):
    """Score ``model`` on ``val_dataset`` with ``ppmatting.core.val.evaluate`` (the same code as
    tools/val.py). Returns ``{metric: mean}`` (lower case names, at least ``sad``)."""
    from ppmatting.core.val import evaluate

    summary = evaluate(model, val_dataset, progress=False)
    metrics = {str(k).lower(): float(v) for k, v in summary["metrics"].items() if v is not None}
    if BEST_METRIC not in metrics:
        failures = "; ".join(f["error"] for f in summary.get("failures", [])[:3])
        raise PPMattingError(f"evaluation gave no {BEST_METRIC.upper()}: {summary['num_failed']} of "
                             f"{summary['num_samples']} samples failed"
                             + (f" ({failures})" if failures else "")
                             + (", or no sample has unknown pixels" if not failures else ""))
    return metrics, summary


# ---- the loop ------------------------------------------------------------------------------------
def _to_batch(batch):
    import paddle
    if not isinstance(batch, dict):
        raise TypeError("the training dataset must return dicts (MattingDataset in train mode)")
    return {k: v if isinstance(v, paddle.Tensor) else paddle.to_tensor(v) for k, v in batch.items()}


def _check_losses_reach_parameters(terms, losses):
    for loss, (name, value) in zip(losses, terms.items()):
        if value.stop_gradient:
            raise ConfigError(f"losses: '{name}' ({type(loss).__name__} on "
                              f"'{getattr(loss, 'pred_key', '?')}') depends on no trainable "
                              f"parameter (its prediction comes from frozen parts); remove it or "
                              f"unfreeze them")


def average_running_statistics(model, world):
    """Average every non-trained tensor of the state dict (batch-norm running mean and variance)
    over the processes. Each process's batch norms see only its shard, so their statistics drift
    apart (Paddle's DataParallel does not broadcast them); training-mode forward passes do not use
    them, so averaging at a checkpoint changes no gradient, and every rank then holds the same
    model. Frozen tensors are identical on all ranks and stay exactly as they are."""
    import paddle
    import paddle.distributed as dist
    trained = {id(p) for p in model.parameters() if not p.stop_gradient}
    with paddle.no_grad():
        for tensor in model.state_dict().values():
            if id(tensor) in trained or not paddle.is_floating_point(tensor):
                continue
            total = tensor.detach().clone()
            dist.all_reduce(total)
            tensor.set_value(total / world)


def max_difference_across_ranks(model):
    """Max |t - t_rank0| over the whole state dict, the same value on every rank."""
    import paddle
    import paddle.distributed as dist
    worst = paddle.zeros([1], dtype="float32")
    with paddle.no_grad():
        for tensor in model.state_dict().values():
            reference = tensor.detach().clone()
            dist.broadcast(reference, src=0)
            diff = paddle.max(paddle.abs(tensor.detach().astype("float32")
                                         - reference.astype("float32")))
            worst = paddle.maximum(worst, diff.reshape([1]))
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst.numpy()[0])


class _Window:
    """Averages of the loss terms and timings since the last log line."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.sums = {}
        self.batch_cost = 0.0
        self.reader_cost = 0.0

    def add(self, values, batch_cost, reader_cost):
        self.count += 1
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.batch_cost += batch_cost
        self.reader_cost += reader_cost

    def means(self):
        n = max(1, self.count)
        return ({k: v / n for k, v in self.sums.items()}, self.batch_cost / n, self.reader_cost / n)


def train(model, train_dataset, losses, build_optimizer, settings, val_dataset=None):
    """Train ``model`` and return a summary dict (also written to ``save_dir/train_summary.json``).

    Args:
        model: a ``paddle.nn.Layer`` whose ``forward(img, trimap)`` returns a dict of N x 1 x H x W
            tensors (``alpha_pred``, ``alpha_refined``, ``alpha``).
        train_dataset: items are dicts of float32 CHW arrays (``img``, ``trimap``, ``alpha``,
            ``image01``, ``fg``, ``bg``, ``comp_valid``); ``set_epoch(epoch)`` is called when
            present, before each epoch's loader iterator is created.
        losses: callables ``loss(outputs, batch) -> scalar tensor`` with a ``name``.
        build_optimizer: ``build_optimizer(parameters) -> paddle.optimizer.Optimizer``; called with
            the trainable parameters only (after freezing). An ``LRScheduler`` used as its learning
            rate is stepped once per iteration.
        settings: :class:`TrainSettings`.
        val_dataset: evaluation samples for ``settings.do_eval``.
    """
    import paddle
    import paddle.distributed as dist

    settings.validate()
    check_precision(settings.precision)
    if not losses:
        raise ConfigError("losses: the config defines no loss (add e.g. '- type: AlphaLoss')")
    names = [getattr(loss, "name", type(loss).__name__) for loss in losses]
    if len(set(names)) != len(names):
        raise ConfigError(f"losses: two losses share a name ({', '.join(names)}); give each a "
                          f"distinct 'name'")
    if settings.do_eval and val_dataset is None:
        raise ConfigError("--do_eval: the config has no val_dataset")

    rank, world = init_distributed()
    is_main = rank == 0
    save_dir = os.path.abspath(settings.save_dir)

    frozen_layers = freeze(model, settings.frozen)
    params = trainable_parameters(model)
    if not params:
        raise ConfigError(f"train.frozen: {list(settings.frozen)} leaves no trainable parameter")
    optimizer = build_optimizer(params)
    scheduler = optimizer._learning_rate if isinstance(
        getattr(optimizer, "_learning_rate", None), paddle.optimizer.lr.LRScheduler) else None

    start_iter, best, seed, seed_note = 0, None, int(settings.seed), ""
    last_checkpoint = None
    if settings.resume_model:
        state = ckpt.load_checkpoint(settings.resume_model)
        missing, unexpected = model.set_state_dict(state["model"]) or ([], [])
        if missing:
            raise PPMattingError(f"{state['path']}: checkpoint lacks {len(missing)} of the model's "
                                 f"tensors (e.g. {missing[0]}); was it made with another config?")
        train_state = state["train_state"]
        if state["optimizer"] is not None:
            optimizer.set_state_dict(ckpt.rename_optimizer_state(
                state["optimizer"], train_state.get("parameter_names", {}), model))
        start_iter = int(train_state.get("iteration", 0))
        best = train_state.get("best")
        seed_note = ""
        if "seed" in train_state and int(train_state["seed"]) != seed:
            # the batch order must continue the interrupted run's, whatever --seed says now
            seed_note = f" (the checkpoint's seed; --seed {seed} ignored)"
            seed = int(train_state["seed"])
        if state["rng"] is not None:
            ckpt.restore_rng_state(state["rng"])
        last_checkpoint = state["path"]
    if start_iter >= settings.iters:
        raise ConfigError(f"--resume_model {settings.resume_model} is at iteration {start_iter}, "
                          f"which is not below --iters {settings.iters}: nothing to train")

    sampler = EpochBatchSampler(len(train_dataset), settings.batch_size, seed=seed, rank=rank,
                                world_size=world)
    steps_per_epoch = sampler.batches_per_epoch
    if steps_per_epoch == 0:
        raise ConfigError(f"train_dataset: {len(train_dataset)} samples over {world} process(es) "
                          f"give no full batch of {settings.batch_size}; lower batch_size")
    loader = paddle.io.DataLoader(train_dataset, batch_sampler=sampler,
                                  num_workers=settings.num_workers, return_list=True)

    net = paddle.DataParallel(model) if world > 1 else model
    stage = settings.stage
    gate = RankZeroGate(rank, world, tag=stage.name if stage else "run")
    logger = TrainLogger(save_dir, settings.iters, start_iter, enabled=is_main,
                         progress_bar=settings.progress_bar, use_vdl=settings.use_vdl, stage=stage)
    try:
        logger.info(f"{world} process(es), batch {settings.batch_size} per process, "
                    f"{len(train_dataset)} samples, {steps_per_epoch} iterations per epoch, seed {seed}"
                    f"{seed_note}, "
                    f"{count_parameters(params):,} trainable parameters"
                    + (f", frozen: {', '.join(settings.frozen)}" if settings.frozen else "")
                    + (f"; resumed from {last_checkpoint} at iteration {start_iter}"
                       if last_checkpoint else "")
                    + (f"; {stage.note}" if stage is not None and stage.note
                       and not last_checkpoint else ""))
        amp_dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(settings.precision)
        scaler = paddle.amp.GradScaler() if settings.precision == "fp16" else None

        iteration = start_iter
        window = _Window()
        train_start = time.time()
        images_seen = 0
        checked_graph = False
        last_terms = {}
        while iteration < settings.iters:
            epoch, skip = divmod(iteration, steps_per_epoch)
            if hasattr(train_dataset, "set_epoch"):
                train_dataset.set_epoch(epoch)
            sampler.set_epoch(epoch, skip)
            tic = time.time()
            for raw_batch in loader:
                reader_cost = time.time() - tic
                iteration += 1
                batch = _to_batch(raw_batch)
                set_train_mode(model, frozen_layers)
                if amp_dtype:
                    with paddle.amp.auto_cast(dtype=amp_dtype, level="O1"):
                        outputs = net(batch["img"], batch["trimap"])
                else:
                    outputs = net(batch["img"], batch["trimap"])
                terms = {name: loss(outputs, batch) for name, loss in zip(names, losses)}
                if not checked_graph:
                    _check_losses_reach_parameters(terms, losses)
                    checked_graph = True
                total = paddle.add_n(list(terms.values()))
                values = paddle.stack([t.detach().astype("float32").reshape([])
                                       for t in terms.values()])
                if world > 1:  # every rank sees the mean, so every rank stops together on NaN
                    dist.all_reduce(values)
                    values = values / world
                values = values.numpy().astype(np.float64)
                for name, value in zip(names, values):
                    if not math.isfinite(value):
                        raise TrainingDivergedError(
                            f"iteration {iteration}: loss term '{name}' is {value} (non-finite); "
                            f"training stopped and nothing was saved for this iteration (last good "
                            f"checkpoint: {last_checkpoint or 'none'})")
                if scaler is not None:
                    scaler.scale(total).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    total.backward()
                    optimizer.step()
                optimizer.clear_grad()
                lr = float(optimizer.get_lr())
                if scheduler is not None:
                    scheduler.step()

                batch_cost = time.time() - tic
                last_terms = dict(zip(names, values.tolist()))
                total_value = float(np.sum(values))
                window.add(dict(last_terms, loss=total_value), batch_cost, reader_cost)
                images_seen += settings.batch_size * world
                logger.step(total_value)

                if iteration % settings.log_iters == 0 or iteration == settings.iters:
                    means, avg_batch, avg_reader = window.means()
                    ips = settings.batch_size * world / max(avg_batch, 1e-12)
                    eta = format_seconds((settings.iters - iteration) * avg_batch)
                    term_text = ", ".join(f"{k} {means[k]:.4f}" for k in names)
                    logger.info(f"epoch {epoch + 1}, iter {iteration}/{settings.iters}, loss "
                                f"{means['loss']:.4f} ({term_text}), lr {lr:.6g}, batch_cost "
                                f"{avg_batch:.4f}, reader_cost {avg_reader:.5f}, ips {ips:.3f} "
                                f"samples/sec | ETA {eta}")
                    record = {"iteration": iteration, "epoch": epoch + 1, "lr": lr,
                              "batch_cost": avg_batch, "reader_cost": avg_reader, "ips": ips,
                              **{k: means[k] for k in ["loss"] + names}}
                    logger.record(TRAIN_LOG, record)
                    logger.scalars("Train", {k: v for k, v in record.items()
                                             if k not in ("iteration", "epoch")}, iteration)
                    if stage is not None:
                        logger.scalars("Train", {"stage": stage.number}, iteration)
                    window.reset()

                if iteration % settings.save_interval == 0 or iteration == settings.iters:
                    if world > 1:
                        average_running_statistics(model, world)
                    if is_main:
                        # pictures at the checkpoint cadence: every log line would fill the disk
                        # over a million iterations
                        logger.train_images(batch, outputs, iteration)
                        best = _save_and_evaluate(model, optimizer, settings, val_dataset, save_dir,
                                                  iteration, seed, best, logger)
                    last_checkpoint = os.path.join(save_dir, f"iter_{iteration}")
                    gate.pass_through()
                if iteration >= settings.iters:
                    break
                tic = time.time()

        elapsed = time.time() - train_start
        summary = {
            **({"stage": stage.number, "stage_name": stage.name,
                "global_iterations": [stage.offset + start_iter + 1, stage.offset + iteration]}
               if stage is not None else {}),
            "iterations": iteration,
            "start_iteration": start_iter,
            "world_size": world,
            "batch_size_per_process": settings.batch_size,
            "seconds": elapsed,
            "images_per_second": images_seen / max(elapsed, 1e-12),
            "final_loss_terms": last_terms,
            "best": best,
            "last_checkpoint": last_checkpoint,
        }
        if world > 1:
            diff = max_difference_across_ranks(model)
            summary["max_weight_difference_across_ranks"] = diff
            logger.info(f"weights identical on all {world} processes: "
                        f"{'yes' if diff == 0 else 'NO'} (max difference {diff:.3g})")
        logger.info(f"done: {iteration - start_iter} iterations in {format_seconds(elapsed)}, "
                    f"{summary['images_per_second']:.3f} images/s over {world} process(es)")
        if is_main:
            from ppmatting.utils.io import atomic_write_bytes
            atomic_write_bytes(os.path.join(save_dir, SUMMARY_FILE),
                               json.dumps(summary, indent=2).encode())
        return summary
    finally:
        logger.close()


def _save_and_evaluate(model, optimizer, settings, val_dataset, save_dir, iteration, seed, best,
                       logger):
    """Rank 0: write ``iter_N``, prune old ones, evaluate and update ``best_model``. Returns the
    (possibly new) best record."""
    metrics = None
    if settings.do_eval:
        start = time.time()
        metrics, summary = evaluate_model(model, val_dataset)
        logger.info(f"evaluation at iter {iteration} on {summary['num_averaged']} images: "
                    + ", ".join(f"{k.upper()} {v:.4f}" for k, v in metrics.items())
                    + f" ({time.time() - start:.1f}s)"
                    + (f"; {summary['num_failed']} FAILED" if summary["num_failed"] else ""))
        logger.record(EVAL_LOG, {"iteration": iteration, **metrics})
        logger.scalars("Evaluate", metrics, iteration)
        if logger.vdl is not None:
            _log_eval_sample(model, val_dataset, iteration, logger)
        if best is None or metrics[BEST_METRIC] < best["value"]:
            best = {"metric": BEST_METRIC, "value": metrics[BEST_METRIC], "iteration": iteration,
                    "metrics": metrics}
            ckpt.save_checkpoint(os.path.join(save_dir, BEST_DIR), model.state_dict(),
                                 extra_files={"metrics.json": {"iteration": iteration,
                                                               "metrics": metrics}})
        logger.info(f"best {BEST_METRIC.upper()} {best['value']:.4f} at iter {best['iteration']}")
    state = {**settings.extra_state,
             **({"stage": settings.stage.number} if settings.stage is not None else {}),
             "iteration": iteration, "seed": seed, "best": best, "iters": settings.iters,
             "batch_size": settings.batch_size, "frozen": list(settings.frozen),
             "metrics": metrics, "parameter_names": ckpt.parameter_names(model)}
    folder = ckpt.save_checkpoint(os.path.join(save_dir, f"iter_{iteration}"), model.state_dict(),
                                  optimizer.state_dict(), state, ckpt.capture_rng_state())
    removed = ckpt.prune_checkpoints(save_dir, settings.keep_checkpoint_max)
    logger.info(f"saved {folder}" + (f" (removed {', '.join(os.path.basename(r) for r in removed)})"
                                     if removed else ""))
    return best


def _log_eval_sample(model, val_dataset, iteration, logger):
    """VisualDL: the first validation image, its true alpha and the model's (at the size the val
    transforms give). Skipped for a sample without a trimap."""
    sample = val_dataset[0]
    trimap_u8 = getattr(sample, "trimap", None)
    if trimap_u8 is None:
        return
    alpha01 = model.predict(sample.image, trimap_u8)
    logger.eval_images(sample.image, {"alpha_true": sample.alpha, "alpha": alpha01}, iteration)
