"""Train a matting network (DIM's three stages) from a YAML config.

    python tools/train.py --config configs/dim/dim-vgg16-stage1.yml --save_dir output/stage1 \
        --do_eval --save_interval 40000 --num_workers 4
    python tools/train.py --config configs/dim/dim-vgg16-stage1.yml --save_dir output/stage1 \
        --resume_model output/stage1/iter_80000          # continue exactly where it stopped
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py --config ...  # 2 processes

Writes ``iter_N/`` checkpoints (model.pdparams, model.pdopt, RNG and train state), ``best_model/``
(with --do_eval: lowest SAD, plus metrics.json), ``train.log``, ``train_log.jsonl``,
``eval_log.jsonl`` and ``train_summary.json`` into --save_dir. --batch_size is per process.

Config keys read here: ``model``, ``train_dataset``, ``val_dataset`` (--do_eval), ``losses``,
``optimizer``, ``lr_scheduler``, ``iters``, ``batch_size`` and ``train:`` (``frozen: [backbone,
decoder]`` for DIM stage 2; defaults for ``save_interval``, ``log_iters``, ``keep_checkpoint_max``,
``num_workers``, which the flags override).
"""
import argparse
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.utils.cli import add_config_arguments  # noqa: E402
from ppmatting.utils.errors import ConfigError, run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir  # noqa: E402

TRAIN_KEYS = {
    "frozen": "a list of the model's sub-layer names to freeze, e.g. [backbone, decoder]",
    "save_interval": "a positive integer",
    "log_iters": "a positive integer",
    "keep_checkpoint_max": "an integer (<= 0 keeps all)",
    "num_workers": "an integer >= 0",
}
DEFAULTS = {"save_interval": 1000, "log_iters": 10, "keep_checkpoint_max": 5, "num_workers": 0}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, model_path=False,
                         config_help="training config, e.g. configs/dim/dim-vgg16-stage1.yml")
    parser.add_argument("--iters", type=int, default=None, help="total iterations (config: iters)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="samples per iteration per process (config: batch_size)")
    parser.add_argument("--learning_rate", type=float, default=None,
                        help="override lr_scheduler.learning_rate")
    parser.add_argument("--save_dir", default="output", help="folder for checkpoints and logs")
    parser.add_argument("--save_interval", type=int, default=None,
                        help="checkpoint (and evaluate) every N iterations (default 1000)")
    parser.add_argument("--keep_checkpoint_max", type=int, default=None,
                        help="keep the newest N iter_* checkpoints, <= 0 keeps all (default 5)")
    parser.add_argument("--log_iters", type=int, default=None,
                        help="log every N iterations (default 10)")
    parser.add_argument("--num_workers", type=int, default=None,
                        help="data-loader worker processes (default 0: load in this process)")
    parser.add_argument("--do_eval", action="store_true",
                        help="evaluate at each save and keep best_model/ by SAD")
    parser.add_argument("--use_vdl", action="store_true",
                        help="write VisualDL scalars and images to SAVE_DIR/vdl (needs visualdl)")
    parser.add_argument("--resume_model", default=None, metavar="DIR",
                        help="checkpoint folder to continue from, e.g. output/iter_1000")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for initialisation, augmentation and batch order "
                             "(default: a random one, printed so the run can be repeated)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                        help="mixed precision where Paddle supports it on the device (not on CPU)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                        help="auto: the GPU when Paddle has one, else the CPU")
    parser.add_argument("--progress_bar", default="auto", choices=("auto", "on", "off"),
                        help="auto shows it when stderr is a terminal")
    return parser.parse_args(argv)


def train_settings_from_config(cfg):
    """The config's ``train:`` mapping, checked."""
    settings = cfg.train_settings
    for key, value in settings.items():
        if key not in TRAIN_KEYS:
            raise ConfigError(f"{cfg.where('train.' + key)}: unknown trainer setting; allowed: "
                              f"{', '.join(sorted(TRAIN_KEYS))}")
        if key == "frozen":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{cfg.where('train.frozen')}: expected {TRAIN_KEYS['frozen']}, "
                                  f"got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{cfg.where('train.' + key)}: expected {TRAIN_KEYS[key]}, got {value!r}")
    return settings


def set_device(name):
    import paddle
    if name == "auto":
        name = "gpu" if paddle.device.is_compiled_with_cuda() and \
            paddle.device.cuda.device_count() > 0 else "cpu"
    if name == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise ConfigError("--device gpu: this Paddle build has no CUDA support")
    if name == "gpu":
        # paddle.distributed.launch gives every process its own card in FLAGS_selected_gpus
        card = os.environ.get("FLAGS_selected_gpus", "0").split(",")[0]
        paddle.set_device(f"gpu:{card}")
    else:
        paddle.set_device("cpu")


@run_cli
def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.save_dir)
    if not args.config:
        raise ConfigError("--config is required (e.g. configs/dim/dim-vgg16-stage1.yml)")
    from ppmatting.core import train as core
    from ppmatting.cvlibs.config import Config

    cfg = Config(args.config, opts=args.opts, iters=args.iters, batch_size=args.batch_size,
                 learning_rate=args.learning_rate)
    from_config = train_settings_from_config(cfg)
    options = {key: getattr(args, key) if getattr(args, key) is not None
               else from_config.get(key, default) for key, default in DEFAULTS.items()}

    set_device(args.device)
    rank, _ = core.init_distributed()
    seed = args.seed
    if args.resume_model:
        # A resumed run continues the interrupted run's random streams: its seed wins.
        from ppmatting.core.checkpoint import read_train_state
        saved_seed = read_train_state(args.resume_model).get("seed")
        if saved_seed is not None:
            if seed is not None and int(seed) != int(saved_seed) and rank == 0:
                print(f"--seed {seed} ignored: resuming with the checkpoint's seed {saved_seed}",
                      flush=True)
            seed = int(saved_seed)
    if seed is None:
        seed = random.SystemRandom().randrange(2 ** 31)
        if rank == 0:
            print(f"seed {seed} (chosen at random; pass --seed {seed} to repeat this run)", flush=True)
    # Model initialisation uses Paddle's generator: seed before building it. Under
    # paddle.distributed.launch every rank gets rank 0's weights from DataParallel anyway.
    core.seed_everything(seed)

    settings = core.TrainSettings(
        iters=cfg.iters, batch_size=cfg.batch_size, save_dir=args.save_dir,
        frozen=tuple(from_config.get("frozen", ())), seed=seed, do_eval=args.do_eval,
        use_vdl=args.use_vdl, precision=args.precision, resume_model=args.resume_model,
        progress_bar=args.progress_bar, **options)
    settings.validate()
    if args.use_vdl and rank == 0:
        from ppmatting.core.train_log import require_visualdl
        require_visualdl()  # fail before the slow model build

    train_dataset = cfg.train_dataset
    if train_dataset is None:
        raise ConfigError(f"{cfg.where('train_dataset')}: missing key (the data to train on)")
    if hasattr(train_dataset, "seed"):
        train_dataset.seed = int(seed)  # the run's seed also drives augmentation and backgrounds
    val_dataset = cfg.val_dataset if args.do_eval else None
    if args.do_eval and val_dataset is None:
        raise ConfigError(f"{cfg.where('val_dataset')}: --do_eval needs a val_dataset in the config")
    losses = cfg.losses
    model = cfg.model

    summary = core.train(model, train_dataset, losses, cfg.optimizer, settings,
                         val_dataset=val_dataset)
    if rank == 0:
        best = summary.get("best")
        if best:
            print(f"best {best['metric'].upper()} {best['value']:.4f} at iteration "
                  f"{best['iteration']}: {os.path.join(args.save_dir, core.BEST_DIR)}")
        print(f"last checkpoint: {summary['last_checkpoint']}")


if __name__ == "__main__":
    main()
