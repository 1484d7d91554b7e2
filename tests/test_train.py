"""tools/train.py, one config trained once: frozen parts, exact resume, atomic checkpoints,
evaluation, NaN stop. (The stages in one command: test_train_stages.py; VisualDL:
test_visualdl.py.)

The tiny DIM-shaped network of tiny_train_net.py stands in for DIM so each run takes about a
second; the losses, frozen parts and optimiser come from the real configs/dim stage files.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import paddle
import pytest

from ppmatting.core import checkpoint as ckpt
from ppmatting.core.sampler import EpochBatchSampler
from ppmatting.utils.errors import InputError
from tiny_train_net import ROOT, assert_same_state, run_train, write_config


def optimizer_state(folder):
    from ppmatting.core.checkpoint import optimizer_state_by_structure
    names = json.loads((folder / "train_state.json").read_text())["parameter_names"]
    state = optimizer_state_by_structure(paddle.load(str(folder / "model.pdopt")), names)
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in state.items()
            if k != "LR_Scheduler"}


# ---- the batch order ------------------------------------------------------------------------------
def test_sampler_shards_are_disjoint_repeatable_and_skippable():
    shards = [EpochBatchSampler(10, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for sampler in shards:
        sampler.set_epoch(5)
    batches = [list(s) for s in shards]
    assert [len(b) for b in batches] == [2, 2]  # 5 samples per rank, incomplete batch dropped
    flat = [i for b in batches for batch in b for i in batch]
    assert len(set(flat)) == 8
    again = EpochBatchSampler(10, 2, seed=3, rank=1, world_size=2)
    again.set_epoch(5, skip_batches=1)
    assert list(again) == batches[1][1:]
    other = EpochBatchSampler(10, 2, seed=3, rank=1, world_size=2)
    other.set_epoch(6)
    assert list(other) != batches[1]


# ---- stages -------------------------------------------------------------------------------------
def _params(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_each_stage_trains_exactly_its_parts(tmp_path, stage):
    from ppmatting.core import train as core
    from ppmatting.cvlibs.config import Config

    cfg = Config(write_config(tmp_path, stage=stage, iters=3))
    core.seed_everything(0)
    model = cfg.model
    before = _params(model)
    settings = core.TrainSettings(iters=3, batch_size=2, save_dir=str(tmp_path / "out"),
                                  save_interval=3, log_iters=1, seed=0, progress_bar="off",
                                  frozen=tuple(cfg.train_settings.get("frozen", ())))
    summary = core.train(model, cfg.train_dataset, cfg.losses, cfg.optimizer, settings)
    after = _params(model)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    expected_terms = {1: {"alpha_loss", "comp_loss"}, 2: {"refine_loss"},
                      3: {"alpha_loss", "comp_loss", "refine_loss"}}[stage]
    assert set(summary["final_loss_terms"]) == expected_terms
    backbone_decoder = {k for k in before if k.startswith(("backbone.", "decoder."))}
    refiner = {k for k in before if k.startswith("refiner.")}
    if stage == 1:
        assert not refiner and changed == backbone_decoder
    elif stage == 2:
        # frozen: no weight moves and the batch norm keeps its running statistics (eval mode)
        assert changed == refiner and refiner
        assert all(p.stop_gradient for p in model.backbone.parameters())
        assert not model.backbone.training and model.refiner.training
    else:
        assert changed == backbone_decoder | refiner


def test_a_loss_on_frozen_parts_only_is_reported(tmp_path, capsys):
    config = write_config(tmp_path, stage=2, extra="""
    losses:
      - type: AlphaLoss
        pred_key: alpha_pred
    """)
    with pytest.raises(SystemExit) as exit_info:
        run_train(config, tmp_path / "out", "--iters", "1")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'alpha_loss'" in err and "frozen" in err


# ---- resume ---------------------------------------------------------------------------------------
def test_resume_continues_as_if_never_stopped(tmp_path):
    """6 iterations straight == 3, stop, resume (with 2 loader workers), 3 more: identical weights
    and optimiser state, bit for bit. The 10 demo samples in batches of 2 make the resume point
    fall inside an epoch (5 batches per epoch). A different --seed on resume is overridden by the
    checkpoint's."""
    config = write_config(tmp_path, stage=3, iters=6)
    run_train(config, tmp_path / "straight", "--save_interval", "3")
    run_train(config, tmp_path / "split", "--save_interval", "3", "--iters", "3")
    assert not os.path.exists(tmp_path / "split" / "iter_6")
    run_train(config, tmp_path / "split", "--save_interval", "3", "--iters", "6", "--num_workers", "2",
              "--resume_model", tmp_path / "split" / "iter_3", seed=99)
    assert_same_state(tmp_path / "straight" / "iter_6" / "model.pdparams",
                      tmp_path / "split" / "iter_6" / "model.pdparams")
    # optimiser states are keyed by per-process parameter names: compare them by structure
    a, b = (optimizer_state(tmp_path / run / "iter_6") for run in ("straight", "split"))
    assert sorted(a) == sorted(b) and any("moment1" in k for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    state = json.loads((tmp_path / "split" / "iter_6" / "train_state.json").read_text())
    assert state["iteration"] == 6 and state["seed"] == 7
    records = [json.loads(line) for line in open(tmp_path / "split" / "train_log.jsonl")]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4, 5, 6]
    straight = [json.loads(line) for line in open(tmp_path / "straight" / "train_log.jsonl")]
    assert [r["loss"] for r in records] == [r["loss"] for r in straight]


def test_keep_checkpoint_max_prunes_old_iterations(tmp_path):
    config = write_config(tmp_path, stage=1, iters=4)
    run_train(config, tmp_path / "out", "--save_interval", "1", "--keep_checkpoint_max", "2")
    assert sorted(p for p in os.listdir(tmp_path / "out") if p.startswith("iter_")) == ["iter_3", "iter_4"]
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".")]


# ---- checkpoints ----------------------------------------------------------------------------------
def small_state(value):
    return {"w": paddle.full([64, 64], float(value))}


def test_interrupted_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path / "iter_2", small_state(2), train_state={"iteration": 2})
    ckpt.save_checkpoint(tmp_path / "best_model", small_state(2), train_state={"iteration": 2})

    real_rename = os.rename

    def failing_rename(src, dst):
        if ".tmp-" in os.path.basename(src):  # the move of the finished folder into place
            raise OSError("simulated crash")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="simulated"):
        ckpt.save_checkpoint(tmp_path / "iter_4", small_state(4), train_state={"iteration": 4})
    # replacing best_model: the old one was moved aside, then the crash
    with pytest.raises(OSError, match="simulated"):
        ckpt.save_checkpoint(tmp_path / "best_model", small_state(4), train_state={"iteration": 4})
    monkeypatch.setattr(os, "rename", real_rename)

    assert not os.path.exists(tmp_path / "iter_4")
    assert not os.path.exists(tmp_path / "best_model")  # between the two renames...
    for name in ("iter_2", "best_model"):  # ...and load puts the old one back
        loaded = ckpt.load_checkpoint(tmp_path / name)
        assert loaded["train_state"]["iteration"] == 2
        assert float(loaded["model"]["w"].numpy()[0, 0]) == 2.0
    assert sorted(os.listdir(tmp_path)) == ["best_model", "iter_2"]


def test_corrupt_or_incomplete_checkpoints_are_named(tmp_path):
    folder = ckpt.save_checkpoint(tmp_path / "iter_1", small_state(1))
    with open(os.path.join(folder, ckpt.MODEL_FILE), "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(InputError, match="model.pdparams: corrupt"):
        ckpt.load_checkpoint(folder)
    os.remove(os.path.join(folder, ckpt.MANIFEST_FILE))
    with pytest.raises(InputError, match="incomplete checkpoint"):
        ckpt.load_checkpoint(folder)
    with pytest.raises(InputError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "nothing")


def test_a_kill_during_saves_never_leaves_a_corrupt_checkpoint(tmp_path):
    """SIGKILL a process that keeps replacing one checkpoint; what remains always loads, whole."""
    script = tmp_path / "saver.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import paddle
        from ppmatting.core import checkpoint as ckpt
        i = 0
        while True:
            i += 1
            ckpt.save_checkpoint({str(tmp_path / 'ckpt')!r}, {{"w": paddle.full([512, 512], float(i))}},
                                 train_state={{"iteration": i}})
            print(i, flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):
            assert proc.stdout.readline().strip()  # a few complete saves
        time.sleep(0.037)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    loaded = ckpt.load_checkpoint(tmp_path / "ckpt")
    iteration = loaded["train_state"]["iteration"]
    assert iteration >= 3
    assert np.all(loaded["model"]["w"].numpy() == float(iteration))


# ---- evaluation, divergence, options ---------------------------------------------------------------
def test_do_eval_keeps_best_model_with_its_metrics(tmp_path):
    config = write_config(tmp_path, stage=1, iters=4, lr=0.02)
    run_train(config, tmp_path / "out", "--save_interval", "2", "--do_eval")
    evals = [json.loads(line) for line in open(tmp_path / "out" / "eval_log.jsonl")]
    assert [e["iteration"] for e in evals] == [2, 4]
    assert all(e["sad"] > 0 for e in evals)
    best = min(evals, key=lambda e: e["sad"])
    record = json.loads((tmp_path / "out" / "best_model" / "metrics.json").read_text())
    assert record["iteration"] == best["iteration"]
    assert record["metrics"]["sad"] == pytest.approx(best["sad"])
    assert set(record["metrics"]) >= {"sad", "mse", "grad", "conn"}
    # the best weights are a plain state dict that model.pretrained / load_weights read
    best_weights = paddle.load(str(tmp_path / "out" / "best_model" / "model.pdparams"))
    iter_weights = paddle.load(str(tmp_path / "out" / f"iter_{best['iteration']}" / "model.pdparams"))
    for key in iter_weights:
        np.testing.assert_array_equal(best_weights[key].numpy(), iter_weights[key].numpy())
    state = json.loads((tmp_path / "out" / "iter_4" / "train_state.json").read_text())
    assert state["best"]["iteration"] == best["iteration"]


def test_nan_loss_stops_with_the_iteration_and_term_and_saves_nothing(tmp_path, capsys):
    config = write_config(tmp_path, stage=1, iters=6, nan_at=3)
    with pytest.raises(SystemExit) as exit_info:
        run_train(config, tmp_path / "out", "--save_interval", "2")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "iteration 3: loss term 'alpha_loss' is nan" in err
    assert "iter_2" in err  # names the last good checkpoint
    assert sorted(p for p in os.listdir(tmp_path / "out") if p.startswith("iter_")) == ["iter_2"]
    assert not os.path.exists(tmp_path / "out" / "train_summary.json")
    ckpt.load_checkpoint(tmp_path / "out" / "iter_2")


def test_unsupported_precision_is_a_one_line_error(tmp_path, capsys):
    config = write_config(tmp_path, stage=1, iters=1)
    with pytest.raises(SystemExit):
        run_train(config, tmp_path / "out", "--precision", "bf16")
    assert "--precision bf16" in capsys.readouterr().err
