"""Published DIM checkpoints -> ppmatting: the user's story is "I downloaded mmediting's (or
PaddleSeg's) weights, converted them, and the network runs with exactly those numbers".

The source files are written here with random values under the source's own names, spelt out
from the published files' names (mmediting's DIM checkpoints and PaddleSeg's
dim-vgg16.pdparams; not from ppmatting's name maps), so a wrong map fails.
mmediting files are pickled NumPy dicts (a ``state_dict`` with ``module.`` prefixes), so the tests
need no PyTorch.
"""
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import paddle
import pytest

import ppmatting  # noqa: F401
from ppmatting.cvlibs.config import Config
from ppmatting import weights
from ppmatting.models.dim import dim_vgg16, dim_vgg16_paddleseg
from ppmatting.utils.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "convert_weights.py")
BLOCKS = (2, 2, 3, 3, 3)


def mmediting_pairs(with_refiner=True):
    """[(mmediting name, ppmatting name)] for the paper's DIM (mmediting's checkpoint names)."""
    pairs = []
    for block, convs in enumerate(BLOCKS, start=1):
        for n in range(convs):  # convs sit at Sequential indices 0, 2, 4 (ReLUs between)
            for p in ("weight", "bias"):
                pairs.append((f"backbone.encoder.layer{block}.{2 * n}.{p}",
                              f"backbone.conv{block}_{n + 1}.{p}"))
    layers = [("backbone.encoder.conv6", "backbone.conv6")]
    layers += [(f"backbone.decoder.{d}", f"decoder.{d}") for d in
               ("deconv6_1", "deconv5_1", "deconv4_1", "deconv3_1", "deconv2_1", "deconv1_1", "deconv1")]
    if with_refiner:
        layers += [(f"refiner.{r}", f"refiner.{r}") for r in
                   ("refine_conv1", "refine_conv2", "refine_conv3", "refine_pred")]
    pairs += [(f"{src}.{p}", f"{dst}.{p}") for src, dst in layers for p in ("weight", "bias")]
    return pairs


def paddleseg_pairs():
    """[(PaddleSeg name, ppmatting name)] for PaddleSeg's DIM (its dim-vgg16.pdparams names)."""
    bn = ("weight", "bias", "_mean", "_variance")
    pairs = [(f"backbone._conv_block_{b}._conv_{n + 1}.weight", f"backbone.conv{b}_{n + 1}.weight")
             for b, convs in enumerate(BLOCKS, start=1) for n in range(convs)]
    pairs += [("backbone._conv_6.weight", "backbone.conv6.weight"),
              ("decoder.deconv6.weight", "decoder.deconv6.weight"),
              ("decoder.alpha_conv.weight", "decoder.alpha_conv.weight")]
    for k in range(1, 6):
        pairs.append((f"decoder.deconv{k}.conv._conv.weight", f"decoder.deconv{k}.conv.conv.weight"))
        pairs += [(f"decoder.deconv{k}.conv._batch_norm.{p}", f"decoder.deconv{k}.conv.bn.{p}")
                  for p in bn]
    for block in ("conv1", "conv2", "conv3", "alpha_pred"):
        pairs.append((f"refine.{block}._conv.weight", f"refiner.{block}.conv.weight"))
        pairs += [(f"refine.{block}._batch_norm.{p}", f"refiner.{block}.bn.{p}") for p in bn]
    return pairs


def random_source(pairs, model, seed):
    """{source name: random float32 array with the shape of the ppmatting tensor it maps to}."""
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    assert sorted(dst for _, dst in pairs) == sorted(shapes), "test's name list must be complete"
    rng = np.random.default_rng(seed)
    source = OrderedDict()
    for src, dst in pairs:
        values = rng.standard_normal(shapes[dst]).astype(np.float32) * 0.05
        if dst.endswith("_variance"):
            values = np.abs(values) + 0.5
        source[src] = values
    return source


def run_tool(*args, cwd):
    return subprocess.run([sys.executable, TOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def load_tool():
    from script_loader import load_script

    return load_script(os.path.relpath(TOOL, ROOT))


def run_tool_inprocess(capsys, *args):
    with pytest.raises(SystemExit) as info:
        load_tool().main(list(args))
    return info.value.code, capsys.readouterr()


def alpha_of(model):
    rng = np.random.default_rng(9)
    image01 = rng.random((64, 64, 3)).astype(np.float32)
    trimap_u8 = np.full((64, 64), 128, np.uint8)
    trimap_u8[:8] = 0
    return model.predict(image01, trimap_u8)


def assert_arrived(model, pairs, source):
    state = model.state_dict()
    for src, dst in pairs:
        got = state[dst].numpy()
        assert got.dtype == source[src].dtype and got.tobytes() == source[src].tobytes(), dst


# ---- round trips ------------------------------------------------------------------------------------

def test_mmediting_checkpoint_converts_and_every_tensor_arrives(tmp_path):
    paddle.seed(10)
    fresh = dim_vgg16()
    pairs = mmediting_pairs()
    source = random_source(pairs, fresh, seed=1)
    src_path = tmp_path / "dim_stage3_mmediting.pkl"
    wrapped = OrderedDict(("module." + name, value) for name, value in source.items())
    with open(src_path, "wb") as handle:
        pickle.dump({"meta": {"mmedit_version": "0.14.0", "iter": 1000000},
                     "state_dict": wrapped}, handle)

    out_path = tmp_path / "dim-vgg16.pdparams"
    result = run_tool("--from", "mmediting", str(src_path), str(out_path), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "matched: 50" in result.stdout and "wrote" in result.stdout

    before = alpha_of(fresh)
    report = weights.load_weights(fresh, str(out_path))
    assert report.source == "ppmatting" and len(report.loaded) == 50
    assert_arrived(fresh, pairs, source)
    assert np.abs(alpha_of(fresh) - before).max() > 1e-3

    # The mmediting file also loads directly, without converting.
    direct = dim_vgg16()
    assert weights.load_weights(direct, str(src_path)).source == "mmediting"
    assert_arrived(direct, pairs, source)
    for path in (src_path, out_path):
        os.remove(path)


def test_paddleseg_checkpoint_converts_and_loads_through_model_pretrained(tmp_path):
    paddle.seed(11)
    fresh = dim_vgg16_paddleseg()
    pairs = paddleseg_pairs()
    assert len(pairs) == 61
    source = random_source(pairs, fresh, seed=2)
    src_path = tmp_path / "dim-vgg16-paddleseg-release.pdparams"
    paddle.save({name: paddle.to_tensor(value) for name, value in source.items()}, str(src_path))

    out_path = tmp_path / "converted.pdparams"
    result = run_tool("--from", "paddleseg", str(src_path), str(out_path), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "matched: 61" in result.stdout

    before = alpha_of(fresh)
    weights.load_weights(fresh, str(out_path))
    assert_arrived(fresh, pairs, source)
    assert np.abs(alpha_of(fresh) - before).max() > 1e-3

    # PaddleSeg's own file through the config's model.pretrained: no conversion step needed.
    cfg = Config(os.path.join(ROOT, "configs/dim/dim-vgg16-paddleseg.yml"),
                 opts=[f"model.pretrained={src_path}"])
    assert_arrived(cfg.model, pairs, source)
    for path in (src_path, out_path):
        os.remove(path)


def test_stage1_checkpoint_covers_the_network_without_refiner(tmp_path):
    paddle.seed(12)
    stage1 = dim_vgg16(refiner=False)
    pairs = mmediting_pairs(with_refiner=False)
    source = random_source(pairs, stage1, seed=3)
    src_path = tmp_path / "dim_stage1.pkl"
    with open(src_path, "wb") as handle:
        pickle.dump({"state_dict": dict(source)}, handle)
    out_path = tmp_path / "stage1.pdparams"
    result = run_tool("--from", "mmediting", str(src_path), str(out_path), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "no refiner" in result.stdout and "matched: 42" in result.stdout

    weights.load_weights(stage1, str(out_path))
    assert_arrived(stage1, pairs, source)
    # Into the network with a refiner: refused, unless starting stage 2 from it on purpose.
    with pytest.raises(InputError, match="8 of 50 tensors missing.*stage-1"):
        weights.load_weights(dim_vgg16(), str(out_path))
    stage2 = dim_vgg16()
    refiner_before = stage2.refiner.refine_pred.weight.numpy().copy()
    report = weights.load_weights(stage2, str(out_path), allow_missing=("refiner.",))
    assert len(report.missing) == 8
    assert_arrived(stage2, pairs, source)
    np.testing.assert_array_equal(stage2.refiner.refine_pred.weight.numpy(), refiner_before)
    for path in (src_path, out_path):
        os.remove(path)


# ---- the tool refuses bad input with one line and writes nothing ----------------------------------

def test_incomplete_checkpoint_is_refused_and_nothing_written(tmp_path, capsys):
    src = tmp_path / "partial.pkl"
    with open(src, "wb") as handle:
        pickle.dump({"state_dict": {
            "backbone.encoder.layer1.0.weight": np.zeros((64, 4, 3, 3), np.float32),
            "backbone.encoder.layer1.0.bias": np.zeros(64, np.float32)}}, handle)
    out = tmp_path / "out.pdparams"
    code, captured = run_tool_inprocess(capsys, "--from", "mmediting", str(src), str(out))
    assert code == 2 and not out.exists()
    error = captured.err.strip()
    assert error.count("\n") == 0 and error.startswith("error: ")
    assert "does not cover the network: 40 of 42 tensors missing" in error
    assert "nothing written" in error


def test_shape_mismatch_is_refused(tmp_path, capsys):
    src = tmp_path / "wrong_shape.pkl"
    with open(src, "wb") as handle:
        pickle.dump({"backbone.encoder.layer1.0.weight": np.zeros((64, 3, 3, 3), np.float32)}, handle)
    out = tmp_path / "out.pdparams"
    code, captured = run_tool_inprocess(capsys, "--from", "mmediting", str(src), str(out))
    assert code == 2 and not out.exists()
    assert "shape mismatch for backbone.conv1_1.weight: file [64, 3, 3, 3], network [64, 4, 3, 3]" \
        in captured.err


def test_wrong_source_layout_names_the_right_flag(tmp_path, capsys):
    src = tmp_path / "paddleseg.pdparams"
    paddle.save({"backbone._conv_block_1._conv_1.weight": np.zeros((64, 4, 3, 3), np.float32),
                 "decoder.deconv6.weight": np.zeros((512, 512, 1, 1), np.float32)}, str(src))
    code, captured = run_tool_inprocess(capsys, "--from", "mmediting", str(src),
                                        str(tmp_path / "out.pdparams"))
    assert code == 2 and "use --from paddleseg" in captured.err


def test_checkpoint_for_the_other_variant_config_is_refused(tmp_path, capsys):
    src = tmp_path / "paddleseg.pdparams"
    paddle.save({"backbone._conv_block_1._conv_1.weight": np.zeros((64, 4, 3, 3), np.float32),
                 "decoder.deconv6.weight": np.zeros((512, 512, 1, 1), np.float32)}, str(src))
    code, captured = run_tool_inprocess(capsys, "--from", "paddleseg", str(src),
                                        str(tmp_path / "out.pdparams"), "--config",
                                        os.path.join(ROOT, "configs/dim/dim-vgg16.yml"))
    assert code == 2
    assert "PaddleSeg's DIM" in captured.err and "dim-vgg16-paddleseg.yml" in captured.err


def test_unreadable_pth_input_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    src = tmp_path / "dim_stage3.pth"
    src.write_bytes(b"PK\x03\x04")
    monkeypatch.setitem(sys.modules, "torch", None)
    out = tmp_path / "out.pdparams"
    code, captured = run_tool_inprocess(capsys, "--from", "mmediting", str(src), str(out))
    assert code == 2 and not out.exists()
    assert captured.err.strip() == f"error: {src}: not a readable zip archive (no end record)"
