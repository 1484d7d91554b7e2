r"""Write real PyTorch checkpoints for ppmatting's torch-free ``.pth`` reader, and check the tests'
own ``.pth`` writer against PyTorch. Needs torch and NumPy, not Paddle; the tests never run it.

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python tools/dev/make_pth_fixtures.py --out tests/data/pth
    /tmp/torchvenv/bin/python tools/dev/make_pth_fixtures.py --check-forge
    /tmp/torchvenv/bin/python tools/dev/make_pth_fixtures.py --dim /tmp/dim_mmediting_random.pth

``--out``: ``torch.save`` of one small mmediting-like checkpoint (``meta`` + ``state_dict``) in the
zip format (``torch_zip.pth``) and the legacy format (``torch_legacy.pth``), with float32, float16,
bfloat16, int64 and bool tensors, a transposed (non-contiguous) view, a view at an offset into
another tensor's storage (shared storage), an ``nn.Parameter``, a 0-d and an empty tensor; and
``expected.npz``: the values torch itself reads back (bfloat16 as float32), which
``tests/test_pth_reader.py`` compares with ppmatting's reader, bit for bit.

``--check-forge``: writes the same content with ``tests/pickle_forge.py`` (the writer the tests use
where torch is not installed), loads it with ``torch.load(weights_only=True)`` and checks every
value and dtype; exits 1 on any difference.

``--dim``: a full-size checkpoint of the paper's DIM under mmediting's names (mmediting's
published DIM: 50 tensors, 26,276,802 parameters) with seeded random values, for trying
``tools/convert_weights.py --from mmediting`` without the published file.
"""
import argparse
import importlib.util
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_forge():
    spec = importlib.util.spec_from_file_location("pickle_forge",
                                                  os.path.join(ROOT, "tests", "pickle_forge.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture_tensors():
    """The fixture content as torch tensors. Values are small integers and halves, exact in
    float16 and bfloat16."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 2 - 3
    tensors = OrderedDict()
    tensors["backbone.encoder.layer1.0.weight"] = base
    tensors["backbone.encoder.layer1.0.bias"] = torch.tensor([0.5, -1.0, 2.25], dtype=torch.float32)
    tensors["half"] = torch.tensor([[1.5, -2.0], [0.25, 4.0]], dtype=torch.float16)
    tensors["bf16"] = torch.tensor([1.0, -0.5, 3.0, 256.0, -1024.0], dtype=torch.bfloat16)
    tensors["long"] = torch.tensor([1, -2, 2 ** 40], dtype=torch.int64)
    tensors["mask"] = torch.tensor([True, False, True])
    tensors["transposed"] = base.t()                   # strides (1, 6): not contiguous
    tensors["offset_view"] = base[1:3, 2:5]            # offset 8 into base's storage, shared
    tensors["parameter"] = torch.nn.Parameter(torch.full((2, 2), 0.75))
    tensors["scalar"] = torch.tensor(7.5)
    tensors["empty"] = torch.zeros((0, 3))
    return tensors


def fixture_object(tensors):
    return {"meta": {"mmedit_version": "0.14.0", "iter": 1000000, "lr": [1e-05], "note": None},
            "state_dict": tensors}


def to_numpy(tensor):
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy().copy()


def write_fixtures(out):
    os.makedirs(out, exist_ok=True)
    obj = fixture_object(fixture_tensors())
    torch.save(obj, os.path.join(out, "torch_zip.pth"))
    torch.save(obj, os.path.join(out, "torch_legacy.pth"), _use_new_zipfile_serialization=False)
    for name in ("torch_zip.pth", "torch_legacy.pth"):
        back = torch.load(os.path.join(out, name), weights_only=True)["state_dict"]
        assert list(back) == list(obj["state_dict"]), name
    expected = {name: to_numpy(t) for name, t in
                torch.load(os.path.join(out, "torch_zip.pth"), weights_only=True)["state_dict"].items()}
    np.savez(os.path.join(out, "expected.npz"), **expected)
    for name in sorted(os.listdir(out)):
        print(f"{os.path.join(out, name)}: {os.path.getsize(os.path.join(out, name))} bytes")


def check_forge(tmp):
    """The tests' writer, read by torch: every value and dtype as meant."""
    forge = load_forge()
    tensors = fixture_tensors()
    base = tensors["backbone.encoder.layer1.0.weight"].numpy()
    shared = forge.TorchStorage(base)
    content = OrderedDict()
    content["backbone.encoder.layer1.0.weight"] = forge.TorchTensor(shared, 0, (4, 6), (6, 1))
    content["backbone.encoder.layer1.0.bias"] = tensors["backbone.encoder.layer1.0.bias"].numpy()
    content["half"] = tensors["half"].numpy()
    content["bf16"] = forge.TorchTensor.of(to_numpy(tensors["bf16"]), bf16=True)
    content["long"] = tensors["long"].numpy()
    content["mask"] = tensors["mask"].numpy()
    content["transposed"] = forge.TorchTensor(shared, 0, (6, 4), (1, 6))
    content["offset_view"] = forge.TorchTensor(shared, 8, (2, 3), (6, 1))
    content["parameter"] = forge.TorchTensor.of(np.full((2, 2), 0.75, np.float32), parameter=True)
    content["scalar"] = np.array(7.5, np.float32)
    content["empty"] = np.zeros((0, 3), np.float32)
    obj = fixture_object(content)
    failures = 0
    for writer in (forge.write_pth, forge.write_pth_legacy):
        path = os.path.join(tmp, f"forge_{writer.__name__}.pth")
        writer(path, obj)
        back = torch.load(path, weights_only=True)
        assert back["meta"] == fixture_object({})["meta"], back["meta"]
        for name, want in tensors.items():
            got = back["state_dict"][name]
            same = got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want.detach())
            if name in ("transposed", "offset_view"):
                same = same and got.stride() == want.stride() and \
                    got.storage_offset() == want.storage_offset()
            if name == "parameter":
                same = same and isinstance(got, torch.nn.Parameter)
            if name == "offset_view":
                same = same and got.untyped_storage().data_ptr() == \
                    back["state_dict"]["backbone.encoder.layer1.0.weight"].untyped_storage().data_ptr()
            print(f"{writer.__name__:17s} {name:34s} {'ok' if same else 'DIFFERENT'}")
            failures += not same
    return failures


def dim_checkpoint(path, seed=0):
    """Random weights under mmediting's DIM names (the published checkpoints' layout)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = OrderedDict()
    channels = [(4, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    blocks = [2, 2, 3, 3, 3]
    index = 0
    for block, convs in enumerate(blocks, start=1):
        for n in range(convs):
            cin, cout = channels[index]
            shapes[f"backbone.encoder.layer{block}.{2 * n}.weight"] = (cout, cin, 3, 3)
            shapes[f"backbone.encoder.layer{block}.{2 * n}.bias"] = (cout,)
            index += 1
    shapes["backbone.encoder.conv6.weight"] = (512, 512, 1, 1)
    shapes["backbone.encoder.conv6.bias"] = (512,)
    for name, cin, cout, k in (("deconv6_1", 512, 512, 1), ("deconv5_1", 512, 512, 5),
                               ("deconv4_1", 512, 256, 5), ("deconv3_1", 256, 128, 5),
                               ("deconv2_1", 128, 64, 5), ("deconv1_1", 64, 64, 5),
                               ("deconv1", 64, 1, 5)):
        shapes[f"backbone.decoder.{name}.weight"] = (cout, cin, k, k)
        shapes[f"backbone.decoder.{name}.bias"] = (cout,)
    for name, cin, cout in (("refine_conv1", 4, 64), ("refine_conv2", 64, 64),
                            ("refine_conv3", 64, 64), ("refine_pred", 64, 1)):
        shapes[f"refiner.{name}.weight"] = (cout, cin, 3, 3)
        shapes[f"refiner.{name}.bias"] = (cout,)
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert len(shapes) == 50 and total == 26_276_802, (len(shapes), total)
    state = OrderedDict((name, torch.randn(shape, generator=generator) * 0.02)
                        for name, shape in shapes.items())
    torch.save({"meta": {"mmedit_version": "0.14.0", "iter": 1000000}, "state_dict": state}, path)
    print(f"{path}: {len(state)} tensors, {total:,} values, {os.path.getsize(path):,} bytes "
          f"(torch {torch.__version__})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for torch_zip.pth, torch_legacy.pth, expected.npz")
    parser.add_argument("--check-forge", action="store_true",
                        help="check tests/pickle_forge.py's .pth writer against torch.load")
    parser.add_argument("--dim", help="write a random full-size mmediting DIM checkpoint here")
    args = parser.parse_args(argv)
    if not (args.out or args.check_forge or args.dim):
        parser.error("nothing to do: give --out, --check-forge and/or --dim")
    failures = 0
    if args.out:
        write_fixtures(args.out)
    if args.check_forge:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            failures = check_forge(tmp)
        print("forge check:", "all equal" if not failures else f"{failures} differences")
    if args.dim:
        dim_checkpoint(args.dim)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
