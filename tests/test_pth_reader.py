"""PyTorch checkpoints (.pth) read without PyTorch, value for value as torch reads them.

The user's story: "I downloaded mmediting's DIM .pth; with no torch installed I convert it, or
pass it to --model_path, and get that network". Three sources of .pth files:

* ``tests/data/pth/``: small files written by real ``torch.save`` (2.13; zip and legacy format)
  with the values torch read back (``expected.npz``), made by ``tools/dev/make_pth_fixtures.py``;
* files written here by ``tests/pickle_forge.py`` (checked against ``torch.load`` by the same
  script's ``--check-forge``), for full-size DIM checkpoints and for odd layouts;
* files written by torch at test time, when torch is installed (not on CI).
"""
import os
import sys
import zipfile
from collections import OrderedDict

import cv2
import numpy as np
import pytest

import ppmatting  # noqa: F401
from pickle_forge import Forge, TorchStorage, TorchTensor, write_pth, write_pth_legacy
from ppmatting import weights
from ppmatting.utils.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "data", "pth")


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError


def assert_identical(got, want, name):
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
    assert got.tobytes() == want.tobytes(), name
    assert got.flags.writeable and got.flags.c_contiguous, name


@pytest.mark.parametrize("file_name", ["torch_zip.pth", "torch_legacy.pth"])
def test_files_written_by_torch_read_exactly_as_torch_reads_them(file_name, no_torch):
    expected = np.load(os.path.join(FIXTURES, "expected.npz"))
    obj = weights.read_weights_object(os.path.join(FIXTURES, file_name))
    assert obj["meta"] == {"mmedit_version": "0.14.0", "iter": 1000000, "lr": [1e-05], "note": None}
    state = obj["state_dict"]
    assert type(state) is OrderedDict and list(state) == list(expected.files)
    for name in expected.files:
        assert_identical(state[name], expected[name], name)
    # what the fixtures cover, so a regenerated fixture cannot silently drop a case
    assert state["bf16"].dtype == np.float32 and state["bf16"].tolist() == [1, -0.5, 3, 256, -1024]
    assert state["half"].dtype == np.float16 and state["long"][2] == 2 ** 40
    np.testing.assert_array_equal(state["transposed"], state["backbone.encoder.layer1.0.weight"].T)
    np.testing.assert_array_equal(state["offset_view"],
                                  state["backbone.encoder.layer1.0.weight"][1:3, 2:5])
    assert state["scalar"].shape == () and state["empty"].shape == (0, 3)
    assert list(weights.read_state_dict(os.path.join(FIXTURES, file_name))) == list(expected.files)


def odd_layouts():
    """Content with every layout a torch file can have, and the arrays it stands for."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 7)).astype(np.float32)
    shared = TorchStorage(base)
    content, want = OrderedDict(), OrderedDict()
    content["base"], want["base"] = TorchTensor(shared, 0, (5, 7), (7, 1)), base
    content["t"], want["t"] = TorchTensor(shared, 0, (7, 5), (1, 7)), base.T
    content["every_other_column"] = TorchTensor(shared, 1, (5, 3), (7, 2))
    want["every_other_column"] = base[:, 1::2]
    content["broadcast_row"] = TorchTensor(shared, 14, (4, 7), (0, 1))
    want["broadcast_row"] = np.broadcast_to(base[2], (4, 7))
    bf16 = np.array([0.15625, -2.5, 65536.0], np.float32)      # exact in bfloat16
    content["bf16"], want["bf16"] = TorchTensor.of(bf16, bf16=True), bf16
    conv = rng.standard_normal((4, 3, 3, 3)).astype(np.float64)
    content["parameter"], want["parameter"] = TorchTensor.of(conv, parameter=True), conv
    ints = rng.integers(-100, 100, (3, 3)).astype(np.int8)
    content["int8"], want["int8"] = ints, ints
    return content, want


@pytest.mark.parametrize("writer", [write_pth, write_pth_legacy])
def test_strided_shared_and_bf16_tensors(writer, tmp_path, no_torch):
    content, want = odd_layouts()
    path = writer(tmp_path / "odd.pth", {"state_dict": content, "meta": {"epoch": 3}})
    state = weights.read_state_dict(str(path))
    assert list(state) == list(want)
    for name, array in want.items():
        assert_identical(state[name], np.ascontiguousarray(array), name)
    state["base"][0, 0] = 99.0            # copies: changing one tensor leaves its views alone
    assert state["t"][0, 0] == want["base"][0, 0] != 99.0


def test_big_endian_archive(tmp_path, no_torch):
    values = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    path = write_pth(tmp_path / "le.pth", {"w": values})
    with zipfile.ZipFile(path) as archive:
        items = {n: archive.read(n) for n in archive.namelist()}
    items["archive/byteorder"] = b"big"
    items["archive/data/0"] = values.astype(">f4").tobytes()
    with zipfile.ZipFile(tmp_path / "be.pth", "w") as archive:
        for name, data in items.items():
            archive.writestr(name, data)
    got = weights.read_state_dict(str(tmp_path / "be.pth"))["w"]
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, values)


def test_unsupported_features_say_what_and_how(tmp_path, no_torch):
    quantised = Forge().value({"w": TorchTensor(TorchStorage(np.ones(2, np.int8)), 0, (2,), (1,))})
    data = quantised.stop().replace(b"CharStorage", b"QInt8Storage")
    with zipfile.ZipFile(tmp_path / "q.pth", "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/data/0", b"\x01\x01")
    with zipfile.ZipFile(tmp_path / "script.pt", "w") as archive:
        archive.writestr("model/constants.pkl", b"\x80\x02).")
        archive.writestr("model/code/__torch__.py", "")
    with zipfile.ZipFile(tmp_path / "other.pth", "w") as archive:
        archive.writestr("readme.txt", "hello")
    for name, words in (("q.pth", "'torch.QInt8Storage' .a torch feature this reader does not "
                                  "implement.: not supported without PyTorch; with torch >= 2.6"),
                        ("script.pt", "TorchScript archive"),
                        ("other.pth", "not a PyTorch checkpoint archive")):
        with pytest.raises(InputError, match=words) as info:
            weights.read_state_dict(str(tmp_path / name))
        assert "\n" not in str(info.value) and name in str(info.value)


def test_files_torch_writes_today(tmp_path):
    torch = pytest.importorskip("torch")   # CI has no torch: the committed fixtures cover it
    generator = torch.Generator().manual_seed(0)
    base = torch.randn((6, 8), generator=generator)
    state = OrderedDict([("w", base), ("t", base.t()), ("slice", base[2:4, 1:7:2]),
                         ("bf16", torch.randn(5, generator=generator).bfloat16()),
                         ("p", torch.nn.Parameter(torch.randn(3, generator=generator)))])
    for legacy in (False, True):
        path = tmp_path / f"torch_{legacy}.pth"
        torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=not legacy)
        got = weights.read_state_dict(str(path))
        for name, tensor in state.items():
            want = tensor.detach().float().numpy() if tensor.dtype == torch.bfloat16 \
                else tensor.detach().numpy()
            assert_identical(got[name], np.ascontiguousarray(want), name)


def test_torch_reads_what_this_reader_does_not_implement(tmp_path, caplog):
    torch = pytest.importorskip("torch")
    path = tmp_path / "float8.pth"
    torch.save({"w": torch.tensor([1.0, -2.0, 0.5]).to(torch.float8_e4m3fn)}, path)
    with caplog.at_level("WARNING", logger="ppmatting.weights"):
        state = weights.read_state_dict(str(path))
    assert "torch.load(weights_only=True)" in caplog.text
    assert state["w"].dtype == np.float32 and state["w"].tolist() == [1.0, -2.0, 0.5]


# ---- the published checkpoint's story, full size ------------------------------------------------
def load_tool(name):
    from script_loader import load_script

    return load_script(f"tools/{name}.py")


@pytest.fixture(scope="module")
def mmediting_pth(tmp_path_factory):
    """A full-size stage-3 mmediting checkpoint (random values under mmediting's names) as torch
    writes it: meta + state_dict with module. prefixes, zip format."""
    import paddle
    from test_convert_weights import mmediting_pairs, random_source
    from ppmatting.models.dim import dim_vgg16
    paddle.seed(20)
    pairs = mmediting_pairs()
    source = random_source(pairs, dim_vgg16(), seed=21)
    folder = tmp_path_factory.mktemp("mmediting")
    state = OrderedDict(("module." + name, value) for name, value in source.items())
    path = write_pth(folder / "dim_stage3_v16_pln_1x1_1000k_comp1k_SAD-50.6_random.pth",
                     {"meta": {"mmedit_version": "0.14.0", "iter": 1000000}, "state_dict": state})
    return path, pairs, source


def test_mmediting_pth_converts_without_torch(mmediting_pth, tmp_path, no_torch, capsys):
    from test_convert_weights import assert_arrived
    from ppmatting.models.dim import dim_vgg16
    path, pairs, source = mmediting_pth
    out = tmp_path / "dim-vgg16.pdparams"
    assert load_tool("convert_weights").main(["--from", "mmediting", str(path), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{path}: 50 tensors in the mmediting layout" in printed and "matched: 50" in printed
    model = dim_vgg16()
    weights.load_weights(model, str(out))
    assert_arrived(model, pairs, source)


def test_mmediting_pth_as_model_path_without_torch(mmediting_pth, tmp_path, no_torch, capsys):
    import paddle
    from ppmatting.models.dim import dim_vgg16
    path, _, _ = mmediting_pth
    rng = np.random.default_rng(3)
    image_u8 = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    trimap_u8 = np.full((64, 80), 128, np.uint8)
    trimap_u8[:10] = 0
    trimap_u8[-10:] = 255
    cv2.imwrite(str(tmp_path / "photo.png"), image_u8)
    cv2.imwrite(str(tmp_path / "photo_trimap.png"), trimap_u8)
    load_tool("predict").main([
        "--config", os.path.join(ROOT, "configs/dim/dim-vgg16.yml"), "--model_path", str(path),
        "--image_path", str(tmp_path / "photo.png"), "--trimap_path", str(tmp_path / "photo_trimap.png"),
        "--save_dir", str(tmp_path / "out"), "--dygraph", "--no_rgba", "--quiet"])
    alpha_u8 = cv2.imread(str(tmp_path / "out" / "photo_alpha.png"), cv2.IMREAD_UNCHANGED)
    paddle.seed(0)
    model = dim_vgg16()
    weights.load_weights(model, str(path))
    image01 = cv2.cvtColor(image_u8, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    expected = np.round(model.predict(image01, trimap_u8) * 255)
    assert alpha_u8.shape == (64, 80)
    assert np.abs(alpha_u8.astype(int) - expected).max() <= 1
    unknown = trimap_u8 == 128
    assert alpha_u8[unknown].std() > 0  # the network's output, not a constant


def test_mmediting_legacy_pth_loads(mmediting_pth, tmp_path, no_torch):
    from test_convert_weights import assert_arrived
    from ppmatting.models.dim import dim_vgg16
    _, pairs, source = mmediting_pth
    stage1 = OrderedDict((name, source[name]) for name, _ in pairs if not name.startswith("refiner"))
    path = write_pth_legacy(tmp_path / "dim_stage1_legacy.pth", {"state_dict": stage1})
    model = dim_vgg16(refiner=False)
    report = weights.load_weights(model, str(path))
    assert report.source == "mmediting" and len(report.loaded) == 42
    assert_arrived(model, [(a, b) for a, b in pairs if not a.startswith("refiner")], source)
