"""Bad files and bad paths give one line, never a traceback: images whose header claims an enormous
size (refused before decoding), cut-short or unknown headers, and output folders or files that
cannot be used (an existing file, a file in the path, a folder where a file is expected, a place
where nothing can be written), for every tool."""
import inspect
import os
import struct
import sys
import zlib

import cv2
import numpy as np
import pytest

from ppmatting.utils import io
from ppmatting.utils.errors import InputError, OutputError
from ppmatting.utils.image_header import HeaderError, read_header

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOSED_FORM = os.path.join(ROOT, "configs", "ml", "closed_form.yml")
DIM_STAGE1 = os.path.join(ROOT, "configs", "dim", "dim-vgg16-stage1.yml")


def png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def png_claiming(width, height):
    """A valid little PNG whose IHDR claims width x height RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


@pytest.fixture
def files(tmp_path):
    """A small photo, trimap and mask, a 60000 x 60000 PNG bomb, a plain file, an empty folder."""
    image = np.zeros((40, 48, 3), np.uint8)
    image[:, 24:] = 220
    trimap = np.zeros((40, 48), np.uint8)
    trimap[:, 20:28] = 128
    trimap[:, 28:] = 255
    io.write_image(tmp_path / "img.png", image)
    io.write_image(tmp_path / "tri.png", trimap)
    io.write_image(tmp_path / "mask.png", (trimap > 127).astype(np.uint8) * 255)
    (tmp_path / "bomb.png").write_bytes(png_claiming(60000, 60000))
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir").mkdir()
    return tmp_path


# ---- image headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ext, shape, dtype", [
    (".png", (37, 53, 3), np.uint8), (".png", (37, 53), np.uint16), (".png", (20, 30, 4), np.uint8),
    (".jpg", (37, 53, 3), np.uint8), (".jpg", (37, 53), np.uint8),
    (".bmp", (37, 53, 3), np.uint8), (".bmp", (20, 30, 4), np.uint8),
    (".tif", (37, 53, 3), np.uint8), (".tif", (37, 53), np.uint16), (".tif", (20, 30, 4), np.uint8),
    (".webp", (37, 53, 3), np.uint8), (".webp", (20, 30, 4), np.uint8),
])
def test_header_sizes_match_what_opencv_decodes(ext, shape, dtype):
    ok, encoded = cv2.imencode(ext, np.zeros(shape, dtype))
    assert ok
    header = read_header(encoded)
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    assert (header.height, header.width) == decoded.shape[:2]
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    assert header.channels >= channels  # the budget never undercounts
    assert header.bytes_per_sample == decoded.dtype.itemsize


def test_lossless_webp_and_bigtiff_headers():
    ok, encoded = cv2.imencode(".webp", np.zeros((5, 7, 3), np.uint8),
                               [cv2.IMWRITE_WEBP_QUALITY, 101])  # quality > 100: lossless, VP8L
    assert bytes(encoded[12:16]) == b"VP8L" and (read_header(encoded).width, read_header(
        encoded).height) == (7, 5)
    # BigTIFF, little-endian: 8-byte first-IFD offset, 20-byte entries (LONG8 width and length)
    entries = struct.pack("<HHQQ", 256, 16, 1, 70000) + struct.pack("<HHQQ", 257, 3, 1, 50000)
    bigtiff = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", 2) + entries
    header = read_header(bigtiff)
    assert (header.format, header.width, header.height) == ("TIFF", 70000, 50000)


@pytest.mark.parametrize("data, reason", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "ends before its image size"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "ends before its image size"),
    (b"\xff\xd8\xff\xda\x00\x08", "no frame header"),
    (b"BM" + b"\x00" * 12 + struct.pack("<I", 7), "header size 7"),
    (b"MM\x00*\x00\x00\x00\x08\x00\x00", "no image width"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8Z", "not VP8"),
    (png_claiming(0, 10), "size of 0x10"),
    (b"GIF89a" + b"\x00" * 20, "not a PNG, JPEG, BMP, TIFF or WebP"),
])
def test_cut_short_inconsistent_or_unknown_headers_are_refused(data, reason):
    with pytest.raises(HeaderError, match=reason):
        read_header(data)


def test_a_png_bomb_is_refused_before_decoding_by_every_reader(files):
    bomb = files / "bomb.png"
    for reader in (io.read_image, io.read_alpha, io.read_trimap, io.read_rgba):
        with pytest.raises(InputError) as err:
            reader(bomb)
        message = str(err.value)
        assert message.startswith(f"{bomb}: its PNG header claims 60000x60000 pixels")
        assert "\n" not in message


def test_the_memory_budget_is_checked_below_the_pixel_limit(files):
    data = (files / "img.png").read_bytes()
    assert io.check_image_header("img.png", data).pixels == 40 * 48
    with pytest.raises(InputError, match=r"img.png: .* 48x40 pixels, which need about"):
        io.check_image_header("img.png", data, budget_bytes=1000)
    # 20000 x 10000 is below the pixel limit; with a 1 GiB budget it does not fit
    with pytest.raises(InputError, match="more than the 1.0 GiB available"):
        io.check_image_header("big.png", png_claiming(20000, 10000), budget_bytes=1024 ** 3)


def test_unreadable_bodies_and_folders_are_one_line(files):
    cut = png_claiming(16, 16)[:45]  # a real header, then the data stops
    (files / "cut.png").write_bytes(cut)
    with pytest.raises(InputError, match="cut.png: not a readable image"):
        io.read_image(files / "cut.png")
    with pytest.raises(InputError, match="is a folder, expected an image file"):
        io.read_image(files / "adir")


# ---- output folders and files -----------------------------------------------------------------------
def test_check_output_dir(files):
    assert io.check_output_dir(str(files / "new" / "deeper")) == str(files / "new" / "deeper")
    assert not (files / "new").exists()  # nothing is created by the check
    assert io.check_output_dir(None) is None
    with pytest.raises(OutputError, match=r"--save_dir .*afile: is a file, not a folder"):
        io.check_output_dir(str(files / "afile"))
    with pytest.raises(OutputError, match=r"--out .*afile/sub: cannot be made, .*afile is a file"):
        io.check_output_dir(str(files / "afile" / "sub"), "--out")
    with pytest.raises(OutputError, match="--save_path .*adir: is a folder, expected a file"):
        io.check_output_file(str(files / "adir"))
    assert io.check_output_file(str(files / "adir" / "x.png")) == str(files / "adir" / "x.png")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and /sys")
def test_places_where_nothing_can_be_written():
    # /proc exists but takes no new files, /sys takes no new folders: for root too
    with pytest.raises(OutputError, match="--save_dir /proc: cannot write files there"):
        io.check_output_dir("/proc")
    with pytest.raises(OutputError, match=r"/sys/ppmatting_out: cannot write files there \(in "
                                          r"/sys\)"):
        io.check_output_dir("/sys/ppmatting_out")
    with pytest.raises(OutputError, match="/proc/out.png: cannot write"):
        io.write_image("/proc/out.png", np.zeros((4, 4), np.uint8))


# ---- every tool ------------------------------------------------------------------------------------
def load_tool(relative):
    from script_loader import load_script

    return load_script(relative)


def run_tool(relative, args, monkeypatch, capsys):
    """The tool's main in this process, as a user would call it; returns (exit code, stderr)."""
    tool = load_tool(relative)
    monkeypatch.setattr(sys, "argv", [relative] + args)
    try:
        code = tool.main(args) if inspect.signature(tool.main).parameters else tool.main()
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip()


def tool_cases(t):
    """(tool, arguments, the output path the one-line error must name) with a bad output path."""
    afile, photo = str(t / "afile"), ["--image_path", str(t / "img.png"), "--trimap_path",
                                      str(t / "tri.png")]
    return [
        ("tools/predict.py", ["--config", CLOSED_FORM, *photo, "--save_dir", afile], afile),
        ("tools/bg_replace.py", ["--config", CLOSED_FORM, *photo, "--background", "white",
                                 "--save_dir", afile], afile),
        ("tools/demo.py", ["--save_dir", afile], afile),
        ("tools/val.py", ["--config", CLOSED_FORM, "--save_dir", afile], afile),
        ("tools/export.py", ["--config", DIM_STAGE1, "--save_dir", afile], afile),
        ("tools/train.py", ["--config", DIM_STAGE1, "--save_dir", afile], afile),
        ("deploy/python/infer.py", ["--config", str(t / "adir"), *photo, "--save_dir", afile],
         afile),
        ("tools/prepare_comp1k.py", ["--adobe_root", str(t / "adir"), "--voc_dir", str(t / "adir"),
                                     "--splits", "test", "--save_dir", afile], afile),
        ("tools/make_demo_data.py", ["--out", afile], afile),
        ("tools/make_trimap.py", ["--mask", str(t / "mask.png"), "--save_path",
                                  str(t / "afile" / "t.png")], afile),
        ("tools/make_list.py", ["--root", str(t), "--columns", "adir", "adir", "--out",
                                str(t / "adir")], str(t / "adir")),
        ("tools/plot_train_log.py", ["--save_dir", str(t / "adir"), "--out", str(t / "adir")],
         str(t / "adir")),
        ("tools/convert_weights.py", ["--from", "mmediting", afile, str(t / "adir")],
         str(t / "adir")),
    ]


TOOLS = [case[0] for case in tool_cases(__import__("pathlib").Path("/t"))]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_refuses_an_unusable_output_path_in_one_line(tool, files, monkeypatch, capsys):
    _, args, named = next(case for case in tool_cases(files) if case[0] == tool)
    before = sorted(os.listdir(files))
    code, err = run_tool(tool, args, monkeypatch, capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and named in err, err
    assert sorted(os.listdir(files)) == before  # nothing was written or created


def test_the_tools_refuse_a_png_bomb_in_one_line(files, monkeypatch, capsys):
    bomb = str(files / "bomb.png")
    code, err = run_tool("tools/predict.py", [
        "--config", CLOSED_FORM, "--image_path", bomb, "--trimap_path", str(files / "tri.png"),
        "--save_dir", str(files / "out")], monkeypatch, capsys)
    assert code == 2 and err == f"error: {bomb}: its PNG header claims 60000x60000 pixels " \
                                f"(3600 MP), more than the 268 MP ppmatting reads; downscale it first"
    code, err = run_tool("tools/make_trimap.py", ["--mask", bomb, "--save_path",
                                                  str(files / "t.png")], monkeypatch, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "60000x60000" in err
    code, err = run_tool("tools/bg_replace.py", [
        "--config", CLOSED_FORM, "--image_path", str(files / "img.png"), "--trimap_path",
        str(files / "tri.png"), "--background", bomb, "--save_dir", str(files / "out")],
        monkeypatch, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "60000x60000" in err
    assert not (files / "out").exists()


def test_a_weights_folder_is_named_as_a_folder_with_the_file_to_give(tmp_path):
    """--model_path given a checkpoint folder: one line saying so, pointing at the file inside
    (the export cache hashes the weights before anything else reads them)."""
    from ppmatting.deploy.export_cache import file_digest

    folder = tmp_path / "iter_100"
    folder.mkdir()
    with pytest.raises(InputError, match=r"iter_100: is a folder, expected a weights file$"):
        file_digest(str(folder))
    (folder / "model.pdparams").write_bytes(b"x")
    with pytest.raises(InputError, match=r"a checkpoint folder: give .*iter_100/model.pdparams"):
        file_digest(str(folder))
