"""DIM's three stages in one command (tools/train.py with a config holding train.stages).

The stages are configs/dim/dim-vgg16.yml's (losses, frozen parts, hand-over from stage to stage);
the tiny network of tiny_train_net.py stands in for DIM so a three-stage run takes seconds.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ppmatting.core import stages
from ppmatting.cvlibs.config import Config
from ppmatting.utils import io
from tiny_train_net import (DIM_CONFIGS, ROOT, assert_same_state, read_params, run_train,
                            write_config, write_stages_config)

TESTS = os.path.dirname(os.path.abspath(__file__))


def stage_params(save_dir, stage):
    """The weights stage ``stage`` handed on (its last checkpoint: these runs do not evaluate)."""
    summary = json.loads((save_dir / f"stage{stage}" / "train_summary.json").read_text())
    return read_params(save_dir / f"stage{stage}" / f"iter_{summary['iterations']}" / "model.pdparams")


def group(params, prefix):
    return {k: v for k, v in params.items() if k.startswith(prefix)}


def same(a, b):
    return sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


# ---- the configs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_one_stage_configs_share_the_stages_of_dim_vgg16(stage):
    """dim-vgg16-stageN.yml (and its -comp1k variant) is stage N of dim-vgg16.yml: the same
    losses, frozen parts, optimiser, rate, iterations and network changes, from one file."""
    full = Config(os.path.join(DIM_CONFIGS, "dim-vgg16.yml"))
    from_stages = stages.stage_config(full, stages.configured_stages(full)[stage])
    for name in (f"dim-vgg16-stage{stage}.yml", f"dim-vgg16-stage{stage}-comp1k.yml"):
        alone = Config(os.path.join(DIM_CONFIGS, name))
        for key in ("losses", "optimizer", "lr_scheduler", "iters", "batch_size"):
            assert alone.dic[key] == from_stages.dic[key], (name, key)
        assert alone.train_settings.get("frozen") == from_stages.train_settings.get("frozen")
        assert stages.configured_stages(alone) == {}  # one stage: trains straight into --save_dir
        model = {k: v for k, v in alone.dic["model"].items() if k != "pretrained"}
        assert model == {k: v for k, v in from_stages.dic["model"].items() if k != "pretrained"}
    assert from_stages.iters == 1_000_000 and from_stages.lr_scheduler() == 1e-5
    assert (from_stages.dic["model"]["refiner"] is None) == (stage == 1)


def test_nested_base_is_read_relative_to_its_file(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "inner.yml").write_text("iters: 7\nlosses: [{type: AlphaLoss}]\n")
    (tmp_path / "outer.yml").write_text(textwrap.dedent(f"""
        _base_: {os.path.join(DIM_CONFIGS, 'dim-vgg16.yml')}
        train:
          stages:
            stage2: {{_base_: parts/inner.yml, batch_size: 3}}
            stage3: null
    """))
    cfg = Config(str(tmp_path / "outer.yml"))
    found = stages.configured_stages(cfg)
    assert sorted(found) == [1, 2]  # a child can drop a stage
    assert found[2]["iters"] == 7 and found[2]["batch_size"] == 3
    assert found[2]["train"]["frozen"] == ["backbone", "decoder"]  # merged over dim_stage2.yml
    assert found[2]["losses"] == [{"type": "AlphaLoss"}]           # the child's list wins


# ---- three stages, one command ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Three stages of 4 iterations each, checkpoints every 2, seed 7."""
    folder = tmp_path_factory.mktemp("straight")
    config = write_stages_config(folder)
    run_train(config, folder / "out")
    return folder / "out"


def test_three_stages_hand_their_weights_on(straight_run):
    out = straight_run
    for stage in (1, 2, 3):
        summary = json.loads((out / f"stage{stage}" / "train_summary.json").read_text())
        assert summary["stage"] == stage and summary["iterations"] == 4
        assert summary["global_iterations"] == [4 * stage - 3, 4 * stage]
        records = [json.loads(line) for line in open(out / f"stage{stage}" / "train_log.jsonl")]
        assert {r["stage"] for r in records} == {stage}
        assert [r["global_iteration"] for r in records] == list(range(4 * stage - 3, 4 * stage + 1))
    s1, s2, s3 = (stage_params(out, n) for n in (1, 2, 3))
    assert not group(s1, "refiner.")  # stage 1 trains the encoder-decoder alone
    encoder_decoder = ("backbone.", "decoder.")
    # stage 2: the encoder-decoder frozen (batch-norm statistics included), the refiner trained
    assert same(group(s2, encoder_decoder), group(s1, encoder_decoder))
    from ppmatting.core.train import seed_everything
    run_cfg = Config(str(out.parent / "stages.yml"))
    stage2_cfg = stages.stage_config(run_cfg, stages.configured_stages(run_cfg)[2])
    seed_everything(stages.stage_seed(7, 2))  # the refiner's initialisation in stage 2
    refiner_init = {k: v.numpy() for k, v in stage2_cfg.model.state_dict().items()
                    if k.startswith("refiner.")}
    assert group(s2, "refiner.") and not any(np.array_equal(refiner_init[k], s2[k])
                                             for k in refiner_init)
    # stage 3: everything trained
    assert not any(np.array_equal(s2[k], s3[k]) for k in s3 if not k.endswith(("_mean", "_variance")))
    # the final network is where predict, val and export look
    assert_same_state(out / "best_model" / "model.pdparams",
                      out / "stage3" / "iter_4" / "model.pdparams")
    assert json.loads((out / "best_model" / "origin.json").read_text())["stage"] == 3
    run_summary = json.loads((out / "train_summary.json").read_text())
    assert [s["stage"] for s in run_summary["stages"]] == [1, 2, 3]
    assert run_summary["final_model"] == str(out / "best_model" / "model.pdparams")
    log = (out / "train.log").read_text()
    assert "stage 1/3:" in log and "stage 3/3:" in log
    assert f"starts from stage 1's result {out / 'stage1' / 'iter_4' / 'model.pdparams'}" in log


def test_a_kill_in_stage_2_and_a_resume_end_with_the_same_weights(straight_run, tmp_path, capsys):
    """Stage 2 crashes at its 3rd iteration (last checkpoint: stage2/iter_2); resuming from that
    checkpoint finishes stage 2 and runs stage 3: the final weights equal the straight run's, bit
    for bit, and so do the loss records of stages 2 and 3."""
    crashing = write_stages_config(tmp_path, name="crash.yml", stage2_nan_at=3)
    with pytest.raises(SystemExit):
        run_train(crashing, tmp_path / "out")
    assert "iteration 3: loss term 'refine_loss' is nan" in capsys.readouterr().err
    assert not (tmp_path / "out" / "stage3").exists()
    config = write_stages_config(tmp_path)
    run_train(config, tmp_path / "out", "--resume_model", tmp_path / "out" / "stage2" / "iter_2",
              seed=99)  # the checkpoint's seed wins
    assert_same_state(straight_run / "best_model" / "model.pdparams",
                      tmp_path / "out" / "best_model" / "model.pdparams")
    for stage in (2, 3):
        def losses(out):
            return [json.loads(line)["loss"] for line in open(out / f"stage{stage}" / "train_log.jsonl")]
        assert losses(tmp_path / "out") == losses(straight_run)


def test_stages_2_3_from_a_stage1_checkpoint_equal_the_straight_run(straight_run, tmp_path):
    config = write_stages_config(tmp_path)
    stage1 = straight_run / "stage1" / "iter_4" / "model.pdparams"
    run_train(config, tmp_path / "out", "--stages", "2", "3", "--opts", f"model.pretrained={stage1}")
    assert not (tmp_path / "out" / "stage1").exists()
    assert_same_state(straight_run / "best_model" / "model.pdparams",
                      tmp_path / "out" / "best_model" / "model.pdparams")
    # and from stage 1's folder in the same --save_dir when model.pretrained is not given
    shutil.copytree(straight_run / "stage1", tmp_path / "again" / "stage1")
    run_train(config, tmp_path / "again", "--stages", "2")
    assert_same_state(straight_run / "stage2" / "iter_4" / "model.pdparams",
                      tmp_path / "again" / "stage2" / "iter_4" / "model.pdparams")
    assert not (tmp_path / "again" / "best_model").exists()  # the final stage did not run
    assert "after stage 3" in json.loads((tmp_path / "again" / "train_summary.json").read_text())["note"]


@pytest.mark.parametrize("values, expected", [
    (["4"], ["--stages 4: ", "has no stage 4 (it defines 1, 2, 3)"]),
    ([], ["--stages: name at least one stage (", "defines 1, 2, 3)"]),
    (["3", "2"], ["--stages 3 2: stages run in order, each from the one before; use --stages 2 3"]),
    (["1", "3"], ["--stages 1 3: the stages must follow each other", "use --stages 1 2 3"]),
    (["2", "stage2"], ["--stages 2 stage2: a stage is named twice"]),
    (["two"], ["--stages two: 'two' is not a stage"]),
])
def test_stages_are_checked_with_one_line(tmp_path, capsys, values, expected):
    config = write_stages_config(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_train(config, tmp_path / "out", "--stages", *values)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --stages")
    for text in expected:
        assert text in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_run_without_stage_weights_and_mismatched_resume_are_refused(straight_run, tmp_path, capsys):
    config = write_stages_config(tmp_path)
    with pytest.raises(SystemExit):
        run_train(config, tmp_path / "out", "--stages", "2", "3")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage 2 starts from stage 1's weights" in err
    assert "model.pretrained" in err
    with pytest.raises(SystemExit):
        run_train(config, tmp_path / "out", "--stages", "3",
                  "--resume_model", straight_run / "stage2" / "iter_2")
    err = capsys.readouterr().err
    assert "is a stage-2 checkpoint; --stages must start there (e.g. --stages 2 3)" in err
    with pytest.raises(SystemExit):
        run_train(write_config(tmp_path), tmp_path / "out", "--stages", "1")
    assert "trains one network in one run" in capsys.readouterr().err


# ---- several processes, with evaluation ---------------------------------------------------------
def test_two_processes_train_the_three_stages_with_evaluation(tmp_path):
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{ROOT!r}, {TESTS!r}]
        from tiny_train_net import TRAIN   # registers TrainTestNet
        TRAIN.main(sys.argv[1:])
    """))
    config = write_stages_config(tmp_path, iters=2)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "log"), str(runner), "--config", config, "--save_dir",
           str(tmp_path / "out"), "--seed", "1", "--progress_bar", "off", "--do_eval"]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    logs = "".join(open(tmp_path / "log" / name).read() for name in sorted(os.listdir(tmp_path / "log"))
                   if name.startswith("workerlog"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs[-3000:]
    for stage in (1, 2, 3):
        summary = json.loads((tmp_path / "out" / f"stage{stage}" / "train_summary.json").read_text())
        assert summary["world_size"] == 2 and summary["iterations"] == 2
        assert summary["max_weight_difference_across_ranks"] == 0.0
        # rank 0 evaluated while rank 1 waited; the next stage started from the best model
        assert summary["best"]["iteration"] in (1, 2)
    assert logs.count("weights identical on all 2 processes: yes") == 3
    assert "[TRAIN]" not in open(tmp_path / "log" / "workerlog.1").read()  # only rank 0 logs
    assert "starts from stage 2's result" in logs and "best_model" in logs
    assert_same_state(tmp_path / "out" / "best_model" / "model.pdparams",
                      tmp_path / "out" / "stage3" / "best_model" / "model.pdparams")
    metrics = json.loads((tmp_path / "out" / "best_model" / "metrics.json").read_text())
    assert metrics["stage"] == 3 and metrics["metrics"]["sad"] > 0


# ---- the training curve -------------------------------------------------------------------------------
def load_plot_tool():
    from script_loader import load_script

    return load_script("tools/plot_train_log.py")


def test_plot_train_log_draws_one_stage(tmp_path):
    plot_tool = load_plot_tool()
    with open(tmp_path / "train_log.jsonl", "w") as handle:
        for i in range(1, 6):
            handle.write(json.dumps({"iteration": 10 * i, "loss": 1.0 / i, "alpha_loss": 0.5 / i}) + "\n")
        handle.write(json.dumps({"iteration": 50, "loss": 0.1, "alpha_loss": 0.05}) + "\n")  # resumed
    with open(tmp_path / "eval_log.jsonl", "w") as handle:
        handle.write(json.dumps({"iteration": 50, "sad": 3.0, "mse": 0.01}) + "\n")
    records = plot_tool.read_records(str(tmp_path / "train_log.jsonl"))
    assert [r["iteration"] for r in records] == [10, 20, 30, 40, 50] and records[-1]["loss"] == 0.1
    plot_tool.main(["--save_dir", str(tmp_path), "--out", str(tmp_path / "plot.png")])
    image = io.read_image(str(tmp_path / "plot.png"))
    assert image.shape[1] == 2 * plot_tool.PANEL_W  # loss panel and evaluation panel
    assert (image.std(axis=2) > 0.1).any()  # coloured curves were drawn


def test_plot_train_log_places_the_stages_one_after_the_other(straight_run, tmp_path):
    plot_tool = load_plot_tool()
    train, evals, starts = plot_tool.read_run(str(straight_run))
    assert [x for x, _ in starts] == [0, 4, 8] and [label for _, label in starts][-1] == "stage 3"
    assert [r["x"] for r in train] == list(range(1, 13)) and not evals
    refine = plot_tool.segments_by_stage(train, "refine_loss")
    assert [xs for xs, _ in refine] == [[5, 6, 7, 8], [9, 10, 11, 12]]  # stages 2 and 3 only
    plot_tool.main(["--save_dir", str(straight_run), "--out", str(tmp_path / "plot.png")])
    assert io.read_image(str(tmp_path / "plot.png")).shape[1] == plot_tool.PANEL_W


def test_save_dir_that_is_a_file_and_a_missing_checkpoint_are_one_line_errors(tmp_path, capsys):
    config = write_stages_config(tmp_path)
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(SystemExit) as exit_info:
        run_train(config, tmp_path / "taken")
    assert exit_info.value.code == 2
    assert f"--save_dir {tmp_path / 'taken'}: is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_train(config, tmp_path / "out", "--resume_model", tmp_path / "out" / "stage2" / "iter_2")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint folder not found" in err
