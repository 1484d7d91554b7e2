"""Weights and checkpoint files never run code, whatever the pickle inside asks for.

The user's story: someone hands you a ``.pdparams``, a ``.pth`` or a checkpoint folder. Each hostile
file here would run ``touch <marker>`` under Python's own ``pickle.load`` (checked first, in a
separate process: the payloads are real), and every one is refused by ppmatting with one line
naming the file, through every entry point that reads weights (``read_state_dict``,
``load_weights``, ``tools/convert_weights.py``, ``--model_path`` of ``tools/predict.py``,
``model.pretrained``, ``backbone.pretrained``, ``--resume_model``), with the marker file absent
afterwards. Files that try to exhaust memory or time are refused before they allocate.

The files are written opcode by opcode (``tests/pickle_forge.py``) from the pickle opcode table
(``pickletools``), or by ``pickle.dumps`` of an object whose ``__reduce__`` returns the payload.
"""
import hashlib
import json
import os
import pathlib
import pickle
import shlex
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import ppmatting  # noqa: F401 - fills the registries
from pickle_forge import Call, Emit, Forge, TorchStorage, TorchTensor, write_pth
from ppmatting import weights
from ppmatting.utils.errors import InputError
from ppmatting.weights import safe_pickle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMPY_CORE = "numpy._core.multiarray"
EXT_CODE = 0x7E51


class Payload:
    """Pickled by Python as ``os.system('touch <marker>')``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (command(self.marker),)


def command(marker):
    return f"touch {shlex.quote(str(marker))}"


def python_code(marker):
    return f"__import__('os').system({command(marker)!r})"


class Raw(Emit):
    """Opcodes given as bytes, spliced into a Forge."""

    def __init__(self, data):
        self.data = data

    def emit(self, forge):
        forge.raw(self.data)


def dotted_builtins_get(marker, stack_global):
    """numpy.dtypes.__builtins__.get('eval')(code): the verified bypass of the first allowlist."""
    forge = Forge(protocol=4).raw(b"}").text("backbone.conv1_1.weight")
    if stack_global:
        forge.stack_global("numpy.dtypes", "__builtins__.get")
    else:
        forge.glob("numpy.dtypes", "__builtins__.get")
    forge.tuple_of(("eval",)).raw(b"R").tuple_of((python_code(marker),)).raw(b"R")
    return forge.raw(b"s").stop()


def os_system_stack_global(marker):
    forge = Forge(protocol=4).raw(b"}").text("w").stack_global("os", "system")
    return forge.tuple_of((command(marker),)).raw(b"R").raw(b"s").stop()


def getattr_import(marker):
    func = Call("builtins", "getattr", Call("builtins", "__import__", "os"), "system")
    forge = Forge().raw(b"}").text("w").value(func).tuple_of((command(marker),)).raw(b"R")
    return forge.raw(b"s").stop()


def object_scalar(marker):
    """numpy scalar(dtype('O'), <payload>): an object scalar's item is any pickled object."""
    forge = Forge().raw(b"}").text("w").glob(NUMPY_CORE, "scalar").mark()
    forge.value(Call("numpy", "dtype", "O8", False, True)).value(Call("os", "system", command(marker)))
    return forge.raw(b"tR").raw(b"s").stop()


def inst_opcode(marker):
    # protocol 0 INST: push args after MARK, then 'i module\nname\n' calls module.name(*args)
    return b"(S" + repr(command(marker)).encode() + b"\nios\nsystem\n."


def obj_opcode(marker):
    return b"(cos\nsystem\nS" + repr(command(marker)).encode() + b"\no."


def ext_opcode(marker):
    # EXT2 looks (module, name) up in copyreg's extension registry (registered by the loader's
    # process for the control run; ppmatting refuses EXT opcodes whatever is registered)
    return b"\x80\x02" + b"\x83" + struct.pack("<H", EXT_CODE) + \
        Forge(protocol=0).tuple_of((command(marker),)).out + b"R."


def reduce_inside_tensor_args(marker):
    """A torch tensor whose size argument is a payload."""
    forge = Forge().raw(b"}").text("w").glob("torch._utils", "_rebuild_tensor_v2").mark()
    forge.mark().text("storage").glob("torch", "FloatStorage").text("0").text("cpu").int(1)
    forge.raw(b"tQ").int(0).value(Call("os", "system", command(marker))).tuple_of((1,))
    return forge.raw(b"\x89").value(OrderedDict()).raw(b"tR").raw(b"s").stop()


def pickles(marker_dir):
    """{name: (pickle bytes, marker path)}: each would run ``touch marker`` under pickle.load."""
    made = {}

    def add(name, build):
        marker = marker_dir / name
        made[name] = (build(marker), marker)

    add("dotted_name_stack_global", lambda m: dotted_builtins_get(m, stack_global=True))
    add("dotted_name_global", lambda m: dotted_builtins_get(m, stack_global=False))
    for protocol in range(6):
        add(f"reduce_os_system_protocol{protocol}",
            lambda m, p=protocol: pickle.dumps({"backbone.conv1_1.weight": Payload(m)}, protocol=p))
    add("os_system_stack_global", os_system_stack_global)
    add("builtins_eval", lambda m: Forge().value({"w": Call("builtins", "eval", python_code(m))}).stop())
    add("builtins_exec", lambda m: Forge().value({"w": Call("builtins", "exec", python_code(m))}).stop())
    add("builtins_getattr_import", getattr_import)
    add("object_array", lambda m: pickle.dumps(
        {"w": np.array([Payload(m)], dtype=object)}, protocol=4))
    add("object_array_protocol5", lambda m: pickle.dumps(
        {"w": np.array([1, Payload(m)], dtype=object)}, protocol=5))
    add("object_scalar", object_scalar)
    add("nested_containers", lambda m: pickle.dumps(
        {"state_dict": {"a": [np.zeros(2, np.float32), {"b": (1, Payload(m))}]}}, protocol=2))
    add("payload_as_dict_key", lambda m: Forge().raw(b"}").value(
        Call("os", "system", command(m))).value(1).raw(b"s").stop())
    add("inst_opcode", inst_opcode)
    add("obj_opcode", obj_opcode)
    add("ext_opcode", ext_opcode)
    add("torch_rebuild_with_payload_argument", reduce_inside_tensor_args)
    return made


def build_hostile_files(folder, markers):
    """{name: (file path, marker path or None)}: the pickles above as .pdparams files, plus the
    payload as data.pkl of a zip .pth and as the object of a legacy .pth, plus a zip .pth whose
    storage type is a payload."""
    files = {}
    for name, (data, marker) in pickles(markers).items():
        path = folder / f"{name}.pdparams"
        path.write_bytes(data)
        files[name] = (path, marker)
    zip_path = folder / "hostile_zip.pth"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(
            {"state_dict": {"w": Payload(markers / "hostile_zip")}}, protocol=2))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    files["hostile_zip"] = (zip_path, markers / "hostile_zip")
    legacy = folder / "hostile_legacy.pth"
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    legacy.write_bytes(header + pickle.dumps({"w": Payload(markers / "hostile_legacy")}, 2) +
                       pickle.dumps([], 2))
    files["hostile_legacy"] = (legacy, markers / "hostile_legacy")
    zip_storage = folder / "hostile_zip_storage_type.pth"
    forge = Forge().raw(b"}").text("w").glob("torch._utils", "_rebuild_tensor_v2").mark().mark()
    forge.text("storage").glob("os", "system").text("0").text("cpu").int(1).raw(b"tQ")
    with zipfile.ZipFile(zip_storage, "w") as archive:
        archive.writestr("archive/data.pkl", forge.raw(b"tRs").stop())
    files["hostile_zip_storage_type"] = (zip_storage, None)
    return files


CONTROL = textwrap.dedent("""
    import copyreg, io, pickle, sys, zipfile
    copyreg.add_extension("os", "system", %d)
    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            return None
        def find_class(self, module, name):  # torch is not installed here: stand-ins
            if module.split(".")[0] == "torch":
                return lambda *args: None
            return super().find_class(module, name)
    for path in sys.argv[1:]:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = [n for n in archive.namelist() if n.endswith("data.pkl")][0]
                handle = io.BytesIO(archive.read(name))
        else:
            handle = open(path, "rb")
        try:
            while True:  # a legacy .pth is several pickles in a row
                Loader(handle).load()
        except Exception:
            pass
""" % EXT_CODE)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The hostile files; first proves, in another process, that Python's pickle runs each
    payload (the same files written with markers in a control folder)."""
    control_dir = tmp_path_factory.mktemp("control")
    control = build_hostile_files(control_dir, control_dir)
    subprocess.run([sys.executable, "-c", CONTROL] + [str(path) for path, _ in control.values()],
                   timeout=120, capture_output=True)
    missing = sorted(name for name, (_, marker) in control.items()
                     if marker is not None and not marker.exists())
    assert not missing, f"payloads that did not run under pickle.load: {missing}"
    return build_hostile_files(tmp_path_factory.mktemp("hostile"),
                               tmp_path_factory.mktemp("markers"))


def assert_refused(error, path, marker):
    message = str(error)
    assert "\n" not in message and str(path) in message, message
    if marker is not None:
        assert not marker.exists(), f"{marker} was created: the payload ran"


# ---- every hostile file, every in-process entry point -------------------------------------------
HOSTILE_NAMES = sorted(pickles(pathlib.Path("unused")).keys()) + [
    "hostile_zip", "hostile_legacy", "hostile_zip_storage_type"]


@pytest.fixture(scope="module")
def dim_model():
    from ppmatting.models.dim import dim_vgg16
    return dim_vgg16(refiner=False)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_is_refused_by_every_reader(name, hostile, dim_model, capsys):
    path, marker = hostile[name]
    with pytest.raises(InputError) as info:
        weights.read_state_dict(str(path))
    assert_refused(info.value, path, marker)
    with pytest.raises(InputError) as info:
        weights.load_weights(dim_model, str(path))
    assert_refused(info.value, path, marker)

    from test_convert_weights import run_tool_inprocess
    out = path.parent / f"{name}.converted.pdparams"
    code, captured = run_tool_inprocess(capsys, "--from", "mmediting", str(path), str(out))
    assert code == 2 and not out.exists()
    error = captured.err.strip()
    assert error.startswith("error: ") and error.count("\n") == 0 and str(path) in error
    assert marker is None or not marker.exists()


def test_messages_say_what_was_refused(hostile):
    expect = {"dotted_name_stack_global": "dotted", "dotted_name_global": "dotted",
              "reduce_os_system_protocol0": "posix.system", "builtins_eval": "builtins.eval",
              "object_array": "not numeric", "object_scalar": "not numeric",
              "inst_opcode": "INST", "obj_opcode": "os.system", "ext_opcode": "EXT",
              "hostile_zip": "posix.system", "hostile_zip_storage_type": "os.system"}
    for name, words in expect.items():
        path, _ = hostile[name]
        with pytest.raises(InputError, match=words):
            weights.read_state_dict(str(path))


def test_hostile_file_through_model_and_backbone_pretrained(hostile):
    from ppmatting.cvlibs.config import Config
    from ppmatting.models.backbones import VGG16
    for name in ("dotted_name_stack_global", "hostile_zip"):
        path, marker = hostile[name]
        cfg = Config(os.path.join(ROOT, "configs/dim/dim-vgg16.yml"),
                     opts=[f"model.pretrained={path}"])
        with pytest.raises(InputError) as info:
            cfg.model
        assert_refused(info.value, path, marker)
    path, marker = hostile["reduce_os_system_protocol4"]
    with pytest.raises(InputError) as info:
        VGG16(pretrained=str(path))
    assert_refused(info.value, path, marker)


def test_hostile_file_through_predict_model_path(hostile, tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / "a.png"), np.random.default_rng(0).integers(0, 255, (64, 64, 3),
                                                                            dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "t.png"), np.full((64, 64), 128, np.uint8))
    path, marker = hostile["dotted_name_stack_global"]
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "predict.py"), "--config",
         os.path.join(ROOT, "configs/dim/dim-vgg16.yml"), "--model_path", str(path),
         "--image_path", str(tmp_path / "a.png"), "--trimap_path", str(tmp_path / "t.png"),
         "--save_dir", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and str(path) in error and "dotted" in error
    assert not marker.exists() and not (tmp_path / "out" / "a_alpha.png").exists()


# ---- a checkpoint folder handed to --resume_model ------------------------------------------------
def _replace_in_checkpoint(folder, file_name, data):
    """An attacker who hands you a folder can make its manifest match anything."""
    (folder / file_name).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][file_name] = {"bytes": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("file_name", ["model.pdopt", "rng_state.pkl", "model.pdparams"])
def test_hostile_checkpoint_file_through_resume_model(file_name, tmp_path, capsys):
    from test_train import run_train, write_config
    config = write_config(tmp_path, stage=1, iters=2)
    run_train(config, tmp_path / "run", "--save_interval", "1", "--iters", "1")
    folder = tmp_path / "run" / "iter_1"
    assert (folder / file_name).exists()
    marker = tmp_path / "ran"
    payload = dotted_builtins_get(marker, stack_global=True) if file_name != "rng_state.pkl" \
        else pickle.dumps({"paddle": None, "numpy": None, "python": Payload(marker)}, protocol=4)
    _replace_in_checkpoint(folder, file_name, payload)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_train(config, tmp_path / "run", "--iters", "2", "--resume_model", folder)
    error = capsys.readouterr().err.strip()
    assert info.value.code == 2 and error.startswith("error: ") and error.count("\n") == 0
    assert str(folder / file_name) in error and "refused" in error
    assert not marker.exists()
    assert not (tmp_path / "run" / "iter_2").exists()


def test_checkpoint_written_by_the_trainer_still_resumes_exactly(tmp_path):
    """The restricted reader returns what paddle.load returned: model, optimiser (Adam moments),
    and the RNG state including Paddle's generator, which decides the next random draw."""
    import paddle
    from ppmatting.core import checkpoint as ckpt
    from test_train import run_train, write_config
    config = write_config(tmp_path, stage=3, iters=1)
    run_train(config, tmp_path / "run", "--save_interval", "1")
    loaded = ckpt.load_checkpoint(tmp_path / "run" / "iter_1")
    reference_model = paddle.load(str(tmp_path / "run" / "iter_1" / "model.pdparams"))
    assert sorted(loaded["model"]) == sorted(reference_model)
    for key, value in reference_model.items():
        assert isinstance(loaded["model"][key], paddle.Tensor)
        np.testing.assert_array_equal(loaded["model"][key].numpy(), value.numpy())
    reference_opt = paddle.load(str(tmp_path / "run" / "iter_1" / "model.pdopt"))
    assert sorted(loaded["optimizer"]) == sorted(reference_opt)
    moments = [k for k in reference_opt if "moment1" in k]
    assert moments and all(np.array_equal(loaded["optimizer"][k].numpy(), reference_opt[k].numpy())
                           for k in moments)
    assert loaded["optimizer"].get("LR_Scheduler") == reference_opt.get("LR_Scheduler")
    with open(tmp_path / "run" / "iter_1" / "rng_state.pkl", "rb") as handle:
        reference_rng = pickle.load(handle)
    ckpt.restore_rng_state(reference_rng)
    want = (paddle.rand([4]).numpy(), np.random.random(3), __import__("random").random())
    paddle.seed(12345), np.random.seed(1)
    ckpt.restore_rng_state(loaded["rng"])
    got = (paddle.rand([4]).numpy(), np.random.random(3), __import__("random").random())
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2]


# ---- the allowed constructors cannot be turned -------------------------------------------------
@pytest.mark.parametrize("name,data,words", [
    ("reconstruct_not_ndarray", Forge().value(Call(NUMPY_CORE, "_reconstruct", Raw(
        b"ccollections\nOrderedDict\n"), (0,), b"b")).stop(), "numpy.ndarray only"),
    ("codecs_other_codec", Forge().value(Call("_codecs", "encode", "x", "rot13")).stop(), "latin1"),
    ("codecs_bytes_in", Forge().value(Call("_codecs", "encode", b"x", "zlib_codec")).stop(),
     "latin1"),
    ("dtype_object", Forge().value(Call("numpy", "dtype", "O8", False, True)).stop(), "not numeric"),
    ("dtype_text", Forge().value(Call("numpy", "dtype", "U8", False, True)).stop(), "not numeric"),
    ("dtype_structured_state", Forge().value(Call("numpy", "dtype", "V8", False, True)).stop(),
     "not numeric"),
    ("dtype_fields_in_state", Forge().value(Call("numpy", "dtype", "f4", False, True)).tuple_of(
        (3, "<", None, ("a",), {"a": 1}, 4, 1, 0)).raw(b"b").stop(), "non-numeric"),
    ("newobj_on_allowed", Forge().glob("collections", "OrderedDict").raw(b")\x81").stop(),
     "NEWOBJ"),
    ("build_on_list", Forge().raw(b"]").value({"__class__": 1}).raw(b"b").stop(), "BUILD"),
    ("appends_on_ordered_dict", Forge().value(OrderedDict()).mark().value(1).raw(b"e").stop(),
     "APPEND"),
    ("bytes_of_a_size", Forge().value(Call("builtins", "bytes", 10 ** 12)).stop(), "bytes()"),
    ("set_of_floats", Forge().value(Call("builtins", "set", [0.5, 1.5])).stop(), "float"),
    ("float_dict_key", Forge().raw(b"}").value(1.5).value(1).raw(b"s").stop(), "float"),
    ("persistent_id_in_plain_pickle", Forge().text("x").raw(b"Q").stop(), "persistent"),
    ("class_as_value", Forge().glob("numpy", "ndarray").stop(), "appears as a value"),
    ("dotted_allowed_name", Forge(protocol=4).stack_global("collections", "OrderedDict.fromkeys")
     .stop(), "dotted"),
    ("future_protocol", b"\x80\x06N.", "protocol 6"),
    ("obj_with_allowed_class", b"\x80\x02(ccollections\nOrderedDict\no.", "OBJ"),
    ("inst_with_allowed_class", b"(icollections\nOrderedDict\n.", "INST"),
])
def test_allowed_constructors_cannot_be_abused(name, data, words, tmp_path):
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(data)
    with pytest.raises(InputError, match=words) as info:
        weights.read_pickle_file(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_ordered_dict_state_is_dropped_not_applied():
    # torch's state_dict() pickles its '_metadata' attribute through BUILD; nothing is set
    data = Forge().value(OrderedDict(a=1)).value({"keys": 5, "__class__": 7}).raw(b"b").stop()
    value = safe_pickle.loads(data)
    assert type(value) is OrderedDict and list(value.keys()) == ["a"] and not vars(value)


# ---- memory and time -----------------------------------------------------------------------------
def _billion_laughs():
    """Ten levels of lists, each holding ten memo references to the previous one: 10**9 items
    when walked, a few hundred bytes on disk."""
    forge = Forge().raw(b"]").mark().raw(b"K\x01" * 10).raw(b"e").raw(b"q\x00")
    for level in range(1, 10):
        forge.raw(b"0]").mark().raw((b"h" + bytes([level - 1])) * 10).raw(b"e")
        forge.raw(b"q" + bytes([level]))
    return forge.stop()


def _deep(levels):
    return b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b"."


@pytest.mark.parametrize("name,data,words", [
    ("binbytes8_declares_an_exabyte", b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 60) + b".",
     "declares 1152921504606846976 bytes"),
    ("binunicode_declares_4gb", b"\x80\x02X" + struct.pack("<I", 2 ** 32 - 1) + b"abc.", "declares"),
    ("long4_of_2gb", b"\x80\x02\x8b" + struct.pack("<i", 2 ** 31 - 1) + b".", "integer of"),
    ("array_declares_a_terabyte", Forge().value(Call(NUMPY_CORE, "_reconstruct", Raw(
        b"cnumpy\nndarray\n"), (0,), b"b")).tuple_of(
        (1, (10 ** 12,), Call("numpy", "dtype", "f4", False, True), False, b"\x00" * 8))
        .raw(b"b").stop(), "needs 4000000000000 bytes"),
    ("frombuffer_shape_lies", Forge(protocol=5).value(Call(
        "numpy._core.numeric", "_frombuffer", b"\x00" * 8, Call("numpy", "dtype", "f8", False, True),
        (10 ** 9,), "C")).stop(), "needs"),
    ("shared_references_expand", _billion_laughs(), "expand"),
    ("shared_references_in_an_error_message", b"\x80\x02cnumpy\ndtype\n(" + _billion_laughs()[2:-1]
     + b"\x89\x88tR.", "dtype <list of 10> is not a numeric type code"),
    ("nested_1000_deep", _deep(1000), "nested more than"),
    ("list_contains_itself", b"\x80\x02]q\x00h\x00a.", "contains itself"),
    ("truncated", pickle.dumps({"a": np.zeros(4)}, protocol=4)[:-20], "ends|remain"),
])
def test_resource_attacks_are_refused_before_allocating(name, data, words, tmp_path):
    path = tmp_path / f"{name}.pdparams"
    path.write_bytes(data)
    with pytest.raises(InputError, match=words) as info:
        weights.read_state_dict(str(path))
    assert "\n" not in str(info.value)


def test_opcode_count_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_pickle, "MAX_OPCODES", 10_000)
    path = tmp_path / "dups.pdparams"
    path.write_bytes(b"\x80\x02N" + b"2" * 20_000 + b"0" * 20_000 + b".")
    with pytest.raises(InputError, match="more than 10,000 opcodes"):
        weights.read_state_dict(str(path))


def test_pth_size_attacks_are_refused(tmp_path):
    storage = TorchStorage(np.ones(1, np.float32))
    cases = {
        "stride_zero_bomb": TorchTensor(storage, 0, (100_000, 100_000), (0, 0)),
        "outside_storage": TorchTensor(TorchStorage(np.ones(4, np.float32)), 2, (10,), (1,)),
    }
    for name, tensor in cases.items():
        path = write_pth(tmp_path / f"{name}.pth", {"state_dict": {"w": tensor}})
        with pytest.raises(InputError) as info:
            weights.read_state_dict(str(path))
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert ("more than the file's size allows" if name == "stride_zero_bomb"
                else "reaches element") in str(info.value)
    # a storage whose declared element count does not match the bytes in the archive
    path = write_pth(tmp_path / "numel_lie.pth", {"w": np.ones(4, np.float32)})
    with zipfile.ZipFile(path) as source:
        items = {n: source.read(n) for n in source.namelist()}
    items["archive/data.pkl"] = items["archive/data.pkl"].replace(b"K\x04t", b"J" + struct.pack(
        "<i", 10 ** 9) + b"t", 1)
    with zipfile.ZipFile(path, "w") as archive:
        for item, data in items.items():
            archive.writestr(item, data)
    with pytest.raises(InputError, match="holds 16 bytes, the pickle declares 4000000000"):
        weights.read_state_dict(str(path))
    # a compressed member that would inflate far beyond the archive's size
    bomb = tmp_path / "inflates.pth"
    big = TorchStorage(np.ones(1, np.float32))
    big.numel = 100 << 18                      # 100 MiB of float32, as the member holds
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", Forge().value({"w": TorchTensor(
            big, 0, (1,), (1,))}).stop())
        with archive.open("archive/data/0", "w", force_zip64=True) as member:
            for _ in range(100):
                member.write(bytes(1 << 20))
    assert os.path.getsize(bomb) < 1 << 20
    with pytest.raises(InputError, match="more than the file's size allows"):
        weights.read_state_dict(str(bomb))


def test_npz_and_zip_directory_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    # an .npy header may declare any shape; NumPy would allocate it before reading the data
    header = {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)}
    buffer = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", buffer.getvalue() + bytes(16))
    with pytest.raises(InputError, match=r"w.npy declares \[1000000000000\] float32"):
        weights.read_state_dict(str(path))
    ok = tmp_path / "ok.npz"
    np.savez(ok, w=np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(weights.read_state_dict(str(ok))["w"], [0, 1, 2])
    from ppmatting.weights import files
    monkeypatch.setattr(files, "MAX_ZIP_DIRECTORY", 10)
    with pytest.raises(InputError, match="the zip directory takes"):
        weights.read_state_dict(str(ok))


def test_damaged_files_give_one_line_errors_never_tracebacks(tmp_path):
    """Random byte flips, cuts and insertions in a real .pdparams and a real .pth: every result
    is a state dict or a one-line InputError."""
    import paddle
    rng = np.random.default_rng(0)
    pdparams = tmp_path / "model.pdparams"
    paddle.save({"a": paddle.to_tensor(rng.standard_normal((3, 4)).astype(np.float32)),
                 "b": paddle.to_tensor(np.arange(5, dtype=np.int64))}, str(pdparams))
    pth = write_pth(tmp_path / "model.pth", {"state_dict": {"w": rng.standard_normal(6).astype(
        np.float32), "t": TorchTensor(TorchStorage(np.arange(6, dtype=np.float32)), 1, (2, 2), (1, 2))}})
    with zipfile.ZipFile(pth) as archive:
        data_pkl = archive.read("archive/data.pkl")
        storages = {n: archive.read(n) for n in archive.namelist() if n != "archive/data.pkl"}
    outcomes = {"ok": 0, "refused": 0}
    for trial in range(400):
        source = pdparams.read_bytes() if trial % 2 else data_pkl
        data = bytearray(source)
        for _ in range(int(rng.integers(1, 4))):
            kind, at = int(rng.integers(3)), int(rng.integers(len(data)))
            if kind == 0:
                data[at] = int(rng.integers(256))
            elif kind == 1:
                del data[at:at + int(rng.integers(1, 9))]
            else:
                data[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8))
        path = tmp_path / f"damaged{trial}.pth"
        if trial % 2:
            path.write_bytes(bytes(data))
        else:
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("archive/data.pkl", bytes(data))
                for name, blob in storages.items():
                    archive.writestr(name, blob)
        try:
            state = weights.read_state_dict(str(path))
            assert isinstance(state, dict)
            outcomes["ok"] += 1
        except InputError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100  # the damage was real


def test_checkpoint_manifest_cannot_point_outside_its_folder(tmp_path):
    from ppmatting.core import checkpoint as ckpt
    import paddle
    folder = ckpt.save_checkpoint(tmp_path / "iter_1", {"w": paddle.ones([2])},
                                  train_state={"iteration": 1})
    manifest_path = os.path.join(folder, "manifest.json")
    good = json.loads(open(manifest_path).read())
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    for name in ("../outside.bin", str(outside), "..", ""):
        manifest = json.loads(json.dumps(good))
        manifest["files"][name] = {"bytes": 6, "sha256": hashlib.sha256(b"secret").hexdigest()}
        with open(manifest_path, "w") as handle:
            json.dump(manifest, handle)
        with pytest.raises(InputError, match="unreadable manifest"):
            ckpt.load_checkpoint(folder)
    with open(manifest_path, "w") as handle:
        handle.write("[" * 100_000 + "]" * 100_000)  # deeper than the JSON parser recurses
    with pytest.raises(InputError, match="not readable JSON"):
        ckpt.read_train_state(folder)
    with open(manifest_path, "w") as handle:
        json.dump(good, handle)
    os.remove(os.path.join(folder, "model.pdparams"))
    os.symlink(outside, os.path.join(folder, "model.pdparams"))
    with pytest.raises(InputError, match="a symbolic link"):
        ckpt.load_checkpoint(folder)


def test_damaged_zip_structure_gives_one_line_errors(tmp_path):
    rng = np.random.default_rng(1)
    pth = write_pth(tmp_path / "model.pth", {"state_dict": {"w": rng.standard_normal(64).astype(
        np.float32)}})
    original = pth.read_bytes()
    for trial in range(200):
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        path = tmp_path / f"zip{trial}.pth"
        path.write_bytes(bytes(data))
        try:
            weights.read_state_dict(str(path))
        except InputError as err:
            assert "\n" not in str(err) and str(path) in str(err)


@pytest.mark.parametrize("protocol", range(6))
def test_legitimate_pickles_of_every_protocol_read_back_exactly(protocol):
    rng = np.random.default_rng(protocol)
    obj = {"conv.weight": rng.standard_normal((64, 64)).astype(np.float32),   # 16 KB
           "big": rng.standard_normal(20_000).astype(np.float32),             # above BIG_PAYLOAD
           "fortran": np.asfortranarray(rng.standard_normal((3, 5))),
           "big_endian": np.arange(4, dtype=">i4"), "mask": np.array([True, False]),
           "complex": np.array([1 + 2j], np.complex64), "empty": np.zeros((0, 3), np.float16),
           "scalar": np.float32(1.5), "step": np.int64(-3),
           "meta": OrderedDict([("iter", 10 ** 6), ("lr", [1e-5]), ("name", "dim\u00e9\n"),
                                ("flags", {1, "a"}), ("pair", (1, (2, None))), ("raw", b"\x00\xff"),
                                ("huge", 2 ** 70), ("frozen", frozenset({(1, 2)}))])}
    got = safe_pickle.loads(pickle.dumps(obj, protocol=protocol))
    want = pickle.loads(pickle.dumps(obj, protocol=protocol))
    assert list(got) == list(want) and got["meta"] == want["meta"]
    assert type(got["meta"]) is OrderedDict
    for name in ("conv.weight", "big", "fortran", "big_endian", "mask", "complex", "empty"):
        assert got[name].dtype.newbyteorder("=") == want[name].dtype.newbyteorder("=")
        assert got[name].shape == want[name].shape and np.array_equal(got[name], want[name])
        assert got[name].flags.writeable and got[name].flags.f_contiguous == want[name].flags.f_contiguous
    assert got["scalar"] == np.float32(1.5) and type(got["scalar"]) is np.float32
    assert got["step"] == -3 and type(got["step"]) is np.int64


def test_paddle_files_read_as_paddle_load_reads_them(tmp_path):
    import paddle
    from ppmatting.weights import read_paddle_file
    layer = paddle.nn.Linear(3, 2)
    optimizer = paddle.optimizer.Adam(parameters=layer.parameters(),
                                      learning_rate=paddle.optimizer.lr.StepDecay(0.1, 2))
    layer(paddle.ones([1, 3])).sum().backward()
    optimizer.step()
    for name, obj in (("layer.pdparams", layer.state_dict()), ("adam.pdopt", optimizer.state_dict()),
                      ("nested.pdparams", {"inner": {"w": paddle.ones([2])}, "n": 3})):
        path = str(tmp_path / name)
        paddle.save(obj, path)
        want, got = paddle.load(path), read_paddle_file(path)
        assert sorted(got) == sorted(want), name
        for key, value in want.items():
            if isinstance(value, paddle.Tensor):
                assert isinstance(got[key], paddle.Tensor)
                np.testing.assert_array_equal(got[key].numpy(), value.numpy())
            elif isinstance(value, dict) and key == "inner":
                np.testing.assert_array_equal(got[key]["w"].numpy(), value["w"].numpy())
            else:
                assert got[key] == value, (name, key)
