"""A training run from a config: one network trained once, or DIM's stages one after the other.

A config whose ``train:`` mapping holds ``stages`` (configs/dim/dim-vgg16.yml) keeps what every
stage shares at its top level and, under ``train.stages.stageN``, what stage N changes (losses,
frozen parts, model changes; optionally iters, lr_scheduler or anything else). Stage N's config is
the top level without ``train.stages``, the stage's mapping merged over it (the stage wins), then
the command line: ``--opts`` (those under ``train.stages.`` were applied to the whole config
first) and the ``--iters``/``--batch_size``/``--learning_rate`` shortcuts, for every stage.

The run (:func:`plan_run`, :func:`run`):

* stage N trains into ``SAVE_DIR/stageN/`` (checkpoints, logs, ``train_summary.json``) with the
  seed ``run seed + N - 1`` (model initialisation, augmentation and batch order), set when the
  stage starts, so a stage does not depend on how the ones before it ran (straight, resumed, or
  in another process) but only on their result;
* stage N > 1 starts from stage N-1's result: its ``best_model`` when it was evaluated, else its
  last checkpoint (``model.pretrained``). The first stage of a run that starts later (``--stages 2
  3``) takes ``model.pretrained`` when the config or ``--opts`` sets it, else the result of stage
  N-1 found in ``SAVE_DIR/stageN-1/``;
* ``--resume_model SAVE_DIR/stage2/iter_K`` continues stage 2 and then runs the rest;
* after the config's last stage the final network is copied to ``SAVE_DIR/best_model/`` (what
  ``--model_path`` of predict, val and export takes) and ``SAVE_DIR/train_summary.json`` lists
  every stage.

A config without ``train.stages`` trains once, straight into ``SAVE_DIR`` (as in PaddleSeg).
"""
import json
import os
import random
import re
from dataclasses import dataclass
from typing import List, Optional

from ppmatting.core import checkpoint as ckpt
from ppmatting.core.train_log import StageInfo
from ppmatting.utils.errors import ConfigError, InputError

STAGE_NAME = re.compile(r"^stage([1-9][0-9]*)$")
SUMMARY_FILE = "train_summary.json"
BEST_DIR = "best_model"
ORIGIN_FILE = "origin.json"

TRAIN_KEYS = {
    "frozen": "a list of the model's sub-layer names to freeze, e.g. [backbone, decoder]",
    "save_interval": "a positive integer",
    "log_iters": "a positive integer",
    "keep_checkpoint_max": "an integer (<= 0 keeps all)",
    "num_workers": "an integer >= 0",
    "stages": "a mapping {stage1: {...}, stage2: {...}} of what each stage changes, or null",
}
DEFAULTS = {"save_interval": 1000, "log_iters": 10, "keep_checkpoint_max": 5, "num_workers": 0}


def train_settings_from_config(cfg):
    """The config's ``train:`` mapping (without ``stages``), checked."""
    settings = cfg.train_settings
    for key, value in settings.items():
        if key not in TRAIN_KEYS:
            raise ConfigError(f"{cfg.where('train.' + key)}: unknown trainer setting; allowed: "
                              f"{', '.join(sorted(TRAIN_KEYS))}")
        if key == "stages":
            continue
        if key == "frozen":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{cfg.where('train.frozen')}: expected {TRAIN_KEYS['frozen']}, "
                                  f"got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{cfg.where('train.' + key)}: expected {TRAIN_KEYS[key]}, got {value!r}")
    settings.pop("stages", None)
    return settings


# ---- the stages a config defines --------------------------------------------------------------
def split_stage_opts(opts):
    """``--opts`` items -> (those under ``train.stages.``, the rest)."""
    staged, rest = [], []
    for item in opts or []:
        (staged if item.split("=", 1)[0].strip().startswith("train.stages") else rest).append(item)
    return staged, rest


def configured_stages(cfg):
    """``{number: overlay mapping}`` of ``train.stages`` (empty when the config has none)."""
    stages = (cfg.dic.get("train") or {}).get("stages")
    if stages is None:
        return {}
    where = cfg.where("train.stages")
    if not isinstance(stages, dict) or not stages:
        raise ConfigError(f"{where}: expected {TRAIN_KEYS['stages']}, got {stages!r}")
    found = {}
    for name, overlay in stages.items():
        match = STAGE_NAME.match(str(name))
        if not match:
            raise ConfigError(f"{where}.{name}: stages are named stage1, stage2, ... (in the order "
                              f"they run)")
        if overlay is None:  # a child config may drop a stage
            continue
        if not isinstance(overlay, dict):
            raise ConfigError(f"{where}.{name}: expected a mapping of the config keys this stage "
                              f"changes, got {overlay!r}")
        if "stages" in (overlay.get("train") or {}):
            raise ConfigError(f"{where}.{name}.train.stages: a stage cannot hold stages")
        found[int(match.group(1))] = overlay
    numbers = sorted(found)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ConfigError(f"{where}: expected stage1, stage2, ... without gaps (each stage starts "
                          f"from the one before), got {', '.join(f'stage{n}' for n in numbers)}")
    return found


def stage_config(cfg, overlay, opts=None, iters=None, batch_size=None, learning_rate=None):
    """Stage's Config: ``cfg`` without ``train.stages``, ``overlay`` merged over it, then the
    command-line overrides."""
    from ppmatting.cvlibs.config import Config, merge_config
    base = dict(cfg.dic)
    base["train"] = {k: v for k, v in (base.get("train") or {}).items() if k != "stages"}
    return Config(cfg.path, opts=opts, iters=iters, batch_size=batch_size,
                  learning_rate=learning_rate, dic=merge_config(base, overlay))


def parse_stage_selection(values, available, config_where):
    """``--stages`` values ('2', 'stage2', '2,3') -> the stage numbers, checked: known, at least
    one, each once, in order, consecutive."""
    shown = " ".join(values)
    numbers = []
    for value in values:
        for part in str(value).replace(",", " ").split():
            match = STAGE_NAME.match(part) or re.match(r"^([1-9][0-9]*)$", part)
            if not match:
                raise ConfigError(f"--stages {shown}: '{part}' is not a stage (expected numbers such "
                                  f"as 2 or names such as stage2)")
            numbers.append(int(match.group(1)))
    listed = ", ".join(str(n) for n in available)
    if not numbers:
        raise ConfigError(f"--stages: name at least one stage ({config_where} defines {listed})")
    for number in numbers:
        if number not in available:
            raise ConfigError(f"--stages {shown}: {config_where} has no stage {number} (it defines "
                              f"{listed})")
    if len(set(numbers)) != len(numbers):
        raise ConfigError(f"--stages {shown}: a stage is named twice")
    if numbers != sorted(numbers):
        raise ConfigError(f"--stages {shown}: stages run in order, each from the one before; use "
                          f"--stages {' '.join(str(n) for n in sorted(numbers))}")
    if numbers != list(range(numbers[0], numbers[-1] + 1)):
        raise ConfigError(f"--stages {shown}: the stages must follow each other (each starts from "
                          f"the one before); use --stages "
                          f"{' '.join(str(n) for n in range(numbers[0], numbers[-1] + 1))}, or run "
                          f"a stage alone with --opts model.pretrained=WEIGHTS")
    return numbers


def stage_seed(run_seed, number):
    """Stage ``number``'s seed: the run's seed for stage 1, +1 for stage 2, ..."""
    return (int(run_seed) + int(number) - 1) % (2 ** 31)


# ---- what a finished stage leaves -------------------------------------------------------------
def stage_dir(save_dir, number):
    return os.path.join(save_dir, f"stage{number}")


def read_summary(folder):
    """``train_summary.json`` of a training folder, or None."""
    path = os.path.join(folder, SUMMARY_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError:
        raise InputError(f"{path}: not a readable summary (JSON)") from None


def stage_result(folder, iterations):
    """The weights a finished stage hands on: ``best_model`` when it was evaluated, else its last
    checkpoint. Returns ``(model.pdparams path, {iteration, metrics})``.

    Read from the last checkpoint's ``train_state.json`` (its ``best``): rank 0 writes it before
    the other processes pass the final save, so every process picks the same file.
    """
    last = os.path.join(folder, f"iter_{iterations}")
    best = ckpt.read_train_state(last).get("best")
    if best:
        path = os.path.join(folder, BEST_DIR, ckpt.MODEL_FILE)
        record = {"iteration": best["iteration"], "metrics": best.get("metrics")}
    else:
        path = os.path.join(last, ckpt.MODEL_FILE)
        record = {"iteration": iterations, "metrics": None}
    if not os.path.isfile(path):
        raise InputError(f"{path}: missing; {last} names it as the stage's result")
    return path, record


# ---- the plan ---------------------------------------------------------------------------------
@dataclass
class StageRun:
    """One call of the trainer: its config, folder, seed, checkpoint to resume and stage."""
    cfg: object
    save_dir: str
    seed: int
    resume_model: Optional[str] = None
    stage: Optional[StageInfo] = None
    pretrained_note: str = ""


@dataclass
class RunPlan:
    runs: List[StageRun]
    save_dir: str
    seed: int
    stage_count: int = 0          # 0: a config without stages
    messages: tuple = ()

    @property
    def staged(self):
        return self.stage_count > 0


def resolve_seed(requested, resume_state, key="seed"):
    """(seed, message): the checkpoint's seed when resuming, else ``requested``, else a random
    one (printed so the run can be repeated)."""
    saved = resume_state.get(key) if resume_state else None
    if saved is not None:
        note = (f"--seed {requested} ignored: resuming with the checkpoint's seed {saved}"
                if requested is not None and int(requested) != int(saved) else "")
        return int(saved), note
    if requested is not None:
        return int(requested), ""
    seed = random.SystemRandom().randrange(2 ** 31)
    return seed, f"seed {seed} (chosen at random; pass --seed {seed} to repeat this run)"


def plan_run(config_path, save_dir, opts=None, iters=None, batch_size=None, learning_rate=None,
             stages=None, resume_model=None, seed=None):
    """Read the config and decide what runs (raises one-line errors for every problem found
    before any training starts: bad stages, bad stage configs, missing starting weights).

    Args:
        config_path, opts, iters, batch_size, learning_rate: as tools/train.py takes them.
        save_dir: the run's folder.
        stages: ``--stages`` values, or None for all (from the checkpoint's stage when resuming).
        resume_model: a checkpoint folder, or None.
        seed: ``--seed`` or None.
    """
    from ppmatting.cvlibs.config import Config
    save_dir = os.path.abspath(save_dir)
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise ConfigError(f"--save_dir {save_dir}: is a file, not a folder")
    stage_opts, other_opts = split_stage_opts(opts)
    cfg = Config(config_path, opts=stage_opts)
    available = configured_stages(cfg)
    resume_state = ckpt.read_train_state(resume_model) if resume_model else None
    if not available:
        if stages is not None:
            raise ConfigError(f"--stages: {cfg.where('train.stages')} is not set: this config "
                              f"trains one network in one run")
        single = Config(config_path, opts=other_opts, iters=iters, batch_size=batch_size,
                        learning_rate=learning_rate, dic=cfg.dic)
        train_settings_from_config(single)
        run_seed, note = resolve_seed(seed, resume_state)
        return RunPlan([StageRun(single, save_dir, run_seed, resume_model)], save_dir, run_seed,
                       messages=(note,) if note else ())

    count = len(available)
    configs = {}
    for number, overlay in available.items():
        configs[number] = stage_config(cfg, overlay, other_opts, iters, batch_size, learning_rate)
        train_settings_from_config(configs[number])
    offsets, total = {}, 0
    for number in sorted(configs):
        offsets[number] = total
        total += configs[number].iters

    resume_stage = _checkpoint_stage(resume_model, resume_state, available) if resume_model else None
    if stages is not None:
        numbers = parse_stage_selection(stages, sorted(available), cfg.where("train.stages"))
        if resume_stage is not None and numbers[0] != resume_stage:
            raise ConfigError(f"--resume_model {resume_model} is a stage-{resume_stage} checkpoint; "
                              f"--stages must start there (e.g. --stages "
                              f"{' '.join(str(n) for n in range(resume_stage, count + 1))})")
    else:
        numbers = list(range(resume_stage or 1, count + 1))

    run_seed, note = resolve_seed(seed, resume_state, key="run_seed")
    if resume_state is not None and resume_state.get("run_seed") is None:
        # a checkpoint of a one-stage config continued as part of the stages
        run_seed = (int(resume_state.get("seed", run_seed)) - resume_stage + 1) % (2 ** 31)
        note = f"run seed {run_seed} (from the checkpoint's stage seed)"
    runs = []
    for position, number in enumerate(numbers):
        stage = StageInfo(number=number, count=count, offset=offsets[number],
                          run_log=os.path.join(save_dir, "train.log"))
        run = StageRun(configs[number], stage_dir(save_dir, number), stage_seed(run_seed, number),
                       stage=stage)
        if position == 0 and resume_model:
            run.resume_model = resume_model
            _drop_pretrained(run.cfg)  # every tensor comes from the checkpoint
            run.pretrained_note = f"resumed from {os.path.abspath(resume_model)}"
        elif position == 0 and number > 1:
            _first_stage_weights(run, save_dir, number)
        runs.append(run)
    return RunPlan(runs, save_dir, run_seed, stage_count=count, messages=(note,) if note else ())


def _checkpoint_stage(resume_model, state, available):
    number = state.get("stage")
    if number is None:
        match = STAGE_NAME.match(os.path.basename(os.path.dirname(os.path.abspath(resume_model))))
        number = int(match.group(1)) if match else None
    if number is None:
        raise ConfigError(f"--resume_model {resume_model}: cannot tell which stage it belongs to (its "
                          f"train_state.json has no 'stage' and its folder is not in a stageN "
                          f"folder); pass --stages N ... starting at its stage")
    if int(number) not in available:
        raise ConfigError(f"--resume_model {resume_model} belongs to stage {number}, which the config "
                          f"does not define (it has {', '.join(str(n) for n in sorted(available))})")
    return int(number)


def _model_spec(cfg):
    model = cfg.dic.get("model")
    if not isinstance(model, dict):
        raise ConfigError(f"{cfg.where('model')}: missing key (the model to build)")
    return model


def _drop_pretrained(cfg):
    model = _model_spec(cfg)
    if "pretrained" in model:
        model["pretrained"] = None
    if isinstance(model.get("backbone"), dict) and "pretrained" in model["backbone"]:
        model["backbone"]["pretrained"] = None


def _first_stage_weights(run, save_dir, number):
    """A run starting at stage ``number`` > 1: ``model.pretrained`` if set, else the result of
    stage ``number - 1`` in ``save_dir``."""
    model = _model_spec(run.cfg)
    if model.get("pretrained"):
        run.pretrained_note = f"starts from model.pretrained = {model['pretrained']}"
        return
    previous = stage_dir(save_dir, number - 1)
    summary = read_summary(previous)
    if summary is None:
        raise ConfigError(f"--stages {number}...: stage {number} starts from stage {number - 1}'s "
                          f"weights, and {previous} holds no finished stage {number - 1} (no "
                          f"{SUMMARY_FILE}); run stage {number - 1} into the same --save_dir, or "
                          f"pass --opts model.pretrained=WEIGHTS (e.g. a published stage-"
                          f"{number - 1} checkpoint)")
    path, record = stage_result(previous, summary["iterations"])
    model["pretrained"] = path
    run.pretrained_note = (f"starts from stage {number - 1}'s result {path} (iteration "
                           f"{record['iteration']})")


# ---- running it -------------------------------------------------------------------------------
@dataclass
class RunOptions:
    """Command-line settings every stage shares (the rest comes from each stage's config)."""
    do_eval: bool = False
    use_vdl: bool = False
    precision: str = "fp32"
    progress_bar: str = "auto"
    overrides: Optional[dict] = None   # --save_interval, --log_iters, ... when given


def run(plan, options, log=print):
    """Train every run of ``plan`` in order; returns the run's summary dict (written to
    ``SAVE_DIR/train_summary.json`` for a staged run; a one-config run writes its own)."""
    from ppmatting.core import train as core
    rank, _ = core.distributed_env()
    for message in plan.messages:
        if rank == 0:
            log(message)
    # every stage's settings are checked before the first one trains
    settings = [_settings(stage_run, options, plan.seed) for stage_run in plan.runs]
    summaries = []
    for index, stage_run in enumerate(plan.runs):
        if index > 0:
            previous = plan.runs[index - 1]
            path, record = stage_result(previous.save_dir, summaries[-1]["iterations"])
            _model_spec(stage_run.cfg)["pretrained"] = path
            stage_run.pretrained_note = (f"starts from stage {previous.stage.number}'s result "
                                         f"{path} (iteration {record['iteration']})")
        summaries.append(_run_one(stage_run, settings[index], options))
    if not plan.staged:
        return summaries[0]
    return _finish_stages(plan, summaries, rank, log)


def _settings(stage_run, options, run_seed):
    """The trainer's settings for one run: its config's ``train:`` with the flags over it."""
    from ppmatting.core import train as core
    cfg = stage_run.cfg
    from_config = train_settings_from_config(cfg)
    overrides = {k: v for k, v in (options.overrides or {}).items() if v is not None}
    values = {key: overrides.get(key, from_config.get(key, default))
              for key, default in DEFAULTS.items()}
    stage = stage_run.stage
    settings = core.TrainSettings(
        iters=cfg.iters, batch_size=cfg.batch_size, save_dir=stage_run.save_dir,
        frozen=tuple(from_config.get("frozen", ())), seed=stage_run.seed, do_eval=options.do_eval,
        use_vdl=options.use_vdl, precision=options.precision,
        resume_model=stage_run.resume_model, progress_bar=options.progress_bar, stage=stage,
        extra_state={"run_seed": int(run_seed)} if stage is not None else {}, **values)
    settings.validate()
    return settings


def _run_one(stage_run, settings, options):
    from ppmatting.core import train as core
    cfg, stage = stage_run.cfg, stage_run.stage
    if stage is not None and stage_run.resume_model:
        state = ckpt.read_train_state(stage_run.resume_model)
        if int(state.get("iteration", 0)) >= cfg.iters:
            # killed after the stage's last checkpoint: the stage is done
            summary = read_summary(stage_run.save_dir) or _summary_from_state(stage_run, state)
            return summary

    # Model initialisation uses Paddle's generator: seed before building it. Under
    # paddle.distributed.launch every rank gets rank 0's weights from DataParallel anyway.
    core.seed_everything(stage_run.seed)
    train_dataset = cfg.train_dataset
    if train_dataset is None:
        raise ConfigError(f"{cfg.where('train_dataset')}: missing key (the data to train on)")
    if hasattr(train_dataset, "seed"):
        train_dataset.seed = int(stage_run.seed)  # the seed also drives augmentation and backgrounds
    val_dataset = cfg.val_dataset if options.do_eval else None
    if options.do_eval and val_dataset is None:
        raise ConfigError(f"{cfg.where('val_dataset')}: --do_eval needs a val_dataset in the config")
    losses = cfg.losses
    if stage is not None:
        stage.note = stage_run.pretrained_note
    model = cfg.model
    return core.train(model, train_dataset, losses, cfg.optimizer, settings,
                      val_dataset=val_dataset)


def _summary_from_state(stage_run, state):
    """A stage's summary rebuilt from its final checkpoint (the process died before writing it)."""
    return {"stage": stage_run.stage.number, "stage_name": stage_run.stage.name,
            "iterations": int(state["iteration"]), "best": state.get("best"),
            "last_checkpoint": os.path.abspath(stage_run.resume_model)}


def _finish_stages(plan, summaries, rank, log):
    """Rank 0: publish the final network (after the config's last stage) and the run summary."""
    last = plan.runs[-1]
    final = None
    if last.stage.number == plan.stage_count and rank == 0:
        path, record = stage_result(last.save_dir, summaries[-1]["iterations"])
        extra = {ORIGIN_FILE: {"stage": last.stage.number,
                               "source": os.path.relpath(path, plan.save_dir),
                               "iteration": record["iteration"]}}
        if record["metrics"]:
            extra["metrics.json"] = {"stage": last.stage.number, "iteration": record["iteration"],
                                     "metrics": record["metrics"]}
        final = os.path.join(ckpt.publish_model(path, os.path.join(plan.save_dir, BEST_DIR), extra),
                             ckpt.MODEL_FILE)
    if rank != 0:
        return {"stages": summaries}
    stages = []
    for number in range(1, plan.stage_count + 1):
        summary = read_summary(stage_dir(plan.save_dir, number))
        if summary is not None:
            stages.append(dict(summary, stage=number, folder=f"stage{number}"))
    result = {"seed": plan.seed, "stages": stages, "final_model": final}
    if final is None:
        done = ", ".join(str(r.stage.number) for r in plan.runs)
        result["note"] = (f"stages {done} of {plan.stage_count} trained; the final network is "
                          f"published to {BEST_DIR}/ after stage {plan.stage_count}")
    from ppmatting.utils.io import atomic_write_bytes
    atomic_write_bytes(os.path.join(plan.save_dir, SUMMARY_FILE),
                       json.dumps(result, indent=2).encode())
    message = (f"final network (stage {plan.stage_count}): {final}" if final else result["note"])
    log(message)
    if last.stage.run_log:
        with open(last.stage.run_log, "a", encoding="utf-8") as handle:
            handle.write(message + "\n")
    return result

