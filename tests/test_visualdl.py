"""tools/train.py --use_vdl with the real VisualDL package (the `vdl` extra), read back with its
LogReader: the scalars equal the JSON-lines records, the step counts over the stages, the pictures
are the data and the predictions."""
import glob
import json
import os
import sys

import cv2
import numpy as np
import pytest

from ppmatting.utils import io
from tiny_train_net import ROOT, run_train, write_config, write_stages_config

visualdl = pytest.importorskip("visualdl")  # CI installs it (.[ci]); the error path is tested below


def read_vdl(folder):
    """``{(component, tag): [(step, value)]}`` from every VisualDL file in ``folder``."""
    from visualdl import LogReader
    data = {}
    files = sorted(glob.glob(os.path.join(folder, "vdlrecords.*.log")))
    assert files, f"no VisualDL file in {folder}"
    for path in files:
        reader = LogReader(file_path=path)
        for component in ("scalar", "image"):
            for tag in reader.get_tags().get(component, []):
                for record in reader.get_data(component, tag):
                    value = record.value if component == "scalar" else cv2.imdecode(
                        np.frombuffer(record.image.encoded_image_string, np.uint8),
                        cv2.IMREAD_COLOR)[:, :, ::-1]
                    data.setdefault((component, tag), []).append((record.id, value))
    return data


@pytest.fixture(scope="module")
def vdl_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vdl")
    config = write_stages_config(folder, iters=2)
    run_train(config, folder / "out", "--use_vdl", "--do_eval")
    return folder / "out"


def test_scalars_are_the_logged_values_at_the_step_over_the_stages(vdl_run):
    for stage, terms in ((1, ["alpha_loss", "comp_loss"]), (2, ["refine_loss"]),
                         (3, ["alpha_loss", "comp_loss", "refine_loss"])):
        data = read_vdl(vdl_run / f"stage{stage}" / "vdl")
        records = [json.loads(line) for line in open(vdl_run / f"stage{stage}" / "train_log.jsonl")]
        steps = [r["global_iteration"] for r in records]
        assert steps == [2 * stage - 1, 2 * stage]  # stage 2 continues where stage 1 ended
        for key in ["loss", "lr", "batch_cost", "reader_cost", "ips"] + terms:
            logged = data[("scalar", f"Train/{key}")]
            assert [step for step, _ in logged] == steps, key
            np.testing.assert_allclose([v for _, v in logged], [r[key] for r in records],
                                       rtol=1e-6, err_msg=key)
        assert [v for _, v in data[("scalar", "Train/stage")]] == [stage, stage]
        absent = {"alpha_loss", "comp_loss", "refine_loss"} - set(terms)
        assert not any(("scalar", f"Train/{k}") in data for k in absent)
        evals = [json.loads(line) for line in open(vdl_run / f"stage{stage}" / "eval_log.jsonl")]
        for metric in ("sad", "mse", "grad", "conn"):
            logged = data[("scalar", f"Evaluate/{metric}")]
            assert [step for step, _ in logged] == [2 * stage]
            assert logged[0][1] == pytest.approx(evals[0][metric], rel=1e-6)


def test_pictures_show_the_sample_and_the_predictions(vdl_run):
    data = read_vdl(vdl_run / "stage3" / "vdl")
    for tag in ("image", "alpha_true", "alpha_pred", "alpha_refined"):
        (step, picture), = data[("image", f"Train/{tag}")]  # at the checkpoint, not every log line
        assert step == 6 and picture.shape == (32, 32, 3) and picture.dtype == np.uint8
    truth = data[("image", "Train/alpha_true")][0][1]
    assert 0 < truth.mean() < 255 and (truth[:, :, 0] == truth[:, :, 2]).all()
    # the validation picture is the first val sample, with its true alpha and the model's
    val_root = os.path.join(ROOT, "data", "matting_demo")
    first = open(os.path.join(val_root, "val.txt")).read().split()
    image = data[("image", "Evaluate/image")][0][1]
    np.testing.assert_array_equal(image, io.to_uint8(io.read_image(os.path.join(val_root, first[0]))))
    alpha_true = data[("image", "Evaluate/alpha_true")][0][1][:, :, 0]
    np.testing.assert_array_equal(alpha_true, io.to_uint8(io.read_alpha(os.path.join(val_root, first[1]))))
    predicted = data[("image", "Evaluate/alpha")][0][1][:, :, 0]
    trimap = io.read_trimap(os.path.join(val_root, first[2]))
    assert (predicted[trimap == 0] == 0).all() and (predicted[trimap == 255] == 255).all()
    assert len(np.unique(predicted[trimap == 128])) > 10  # a prediction, not a copy of the truth
    assert not np.array_equal(predicted, alpha_true)


def test_one_stage_run_logs_at_its_own_iterations(tmp_path):
    run_train(write_config(tmp_path, stage=1, iters=2), tmp_path / "out", "--use_vdl")
    data = read_vdl(tmp_path / "out" / "vdl")
    assert [step for step, _ in data[("scalar", "Train/loss")]] == [1, 2]
    assert ("scalar", "Train/stage") not in data


def test_missing_visualdl_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "visualdl", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as exit_info:
        run_train(write_config(tmp_path, stage=1, iters=1), tmp_path / "out", "--use_vdl")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--use_vdl needs the visualdl package" in err
    assert "pip install -e '.[vdl]'" in err
    assert not os.path.exists(tmp_path / "out" / "train.log")  # failed before training
