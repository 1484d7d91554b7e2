r"""Train a matting network from a YAML config; DIM's three stages in one command.

    python tools/train.py --config configs/dim/dim-vgg16.yml --save_dir output/dim-vgg16 --do_eval
    python tools/train.py --config configs/dim/dim-vgg16.yml --save_dir output/dim-vgg16 \
        --resume_model output/dim-vgg16/stage2/iter_80000   # continue stage 2, then stage 3
    python tools/train.py --config configs/dim/dim-vgg16.yml --save_dir output/dim-vgg16 \
        --stages 2 3 --opts model.pretrained=dim_stage1.pth # from a published stage-1 checkpoint
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py --config ...  # 2 processes

A config with ``train.stages`` (configs/dim/dim-vgg16.yml: the encoder-decoder, then the refiner
alone, then everything) trains its stages in order, stage N into SAVE_DIR/stageN/ starting from
stage N-1's best model (its last one without --do_eval), and copies the final network to
SAVE_DIR/best_model/model.pdparams (what --model_path of predict, val and export takes). A config
without stages (dim-vgg16-stage1.yml, one stage alone) trains straight into SAVE_DIR.

Each training folder gets ``iter_N/`` checkpoints (model.pdparams, model.pdopt, RNG and train
state), ``best_model/`` (with --do_eval: lowest SAD, plus metrics.json), ``train.log``,
``train_log.jsonl``, ``eval_log.jsonl`` and ``train_summary.json``. --batch_size is per process;
--iters, --batch_size, --learning_rate and --opts apply to every stage (--opts
train.stages.stage2.iters=100 to one).

Config keys read here: ``model``, ``train_dataset``, ``val_dataset`` (--do_eval), ``losses``,
``optimizer``, ``lr_scheduler``, ``iters``, ``batch_size`` and ``train:`` (``frozen``,
``stages``; defaults for ``save_interval``, ``log_iters``, ``keep_checkpoint_max``,
``num_workers``, which the flags override).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppmatting.utils.cli import add_config_arguments  # noqa: E402
from ppmatting.utils.errors import ConfigError, run_cli  # noqa: E402
from ppmatting.utils.io import check_output_dir  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, model_path=False,
                         config_help="training config, e.g. configs/dim/dim-vgg16.yml")
    parser.add_argument("--stages", nargs="*", default=None, metavar="N",
                        help="run only these stages of a config with train.stages, in order, e.g. "
                             "--stages 2 3 (default: all; when resuming, from the checkpoint's)")
    parser.add_argument("--iters", type=int, default=None,
                        help="iterations (per stage) (config: iters)")
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
                        help="write VisualDL scalars and images to SAVE_DIR/vdl (SAVE_DIR/stageN/vdl "
                             "per stage; needs the visualdl extra: pip install -e '.[vdl]')")
    parser.add_argument("--resume_model", default=None, metavar="DIR",
                        help="checkpoint folder to continue from (then the later stages), e.g. "
                             "output/dim-vgg16/stage2/iter_40000")
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
        raise ConfigError("--config is required (e.g. configs/dim/dim-vgg16.yml)")
    from ppmatting.core import stages, train as core

    plan = stages.plan_run(args.config, args.save_dir, opts=args.opts, iters=args.iters,
                           batch_size=args.batch_size, learning_rate=args.learning_rate,
                           stages=args.stages, resume_model=args.resume_model, seed=args.seed)
    rank, _ = core.distributed_env()
    if args.use_vdl and rank == 0:
        from ppmatting.core.train_log import require_visualdl
        require_visualdl()  # fail before the slow model build
    set_device(args.device)
    core.init_distributed()
    options = stages.RunOptions(
        do_eval=args.do_eval, use_vdl=args.use_vdl, precision=args.precision,
        progress_bar=args.progress_bar,
        overrides={key: getattr(args, key) for key in stages.DEFAULTS})
    summary = stages.run(plan, options, log=lambda line: print(line, flush=True))
    if rank == 0 and not plan.staged:
        best = summary.get("best")
        if best:
            print(f"best {best['metric'].upper()} {best['value']:.4f} at iteration "
                  f"{best['iteration']}: {os.path.join(args.save_dir, core.BEST_DIR)}")
        print(f"last checkpoint: {summary['last_checkpoint']}")


if __name__ == "__main__":
    main()
