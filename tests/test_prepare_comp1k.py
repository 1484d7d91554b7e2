"""tools/prepare_comp1k.py on a miniature Adobe / COCO / VOC tree made here."""
import math
import os

import numpy as np
import pytest
from PIL import Image

from ppmatting.datasets import MattingDataset
from ppmatting.transforms import LoadImages
from ppmatting.utils import io
from script_loader import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# registered: worker processes find process_foreground by module name
prep = load_script("tools/prepare_comp1k.py", name="ppm_prepare_comp1k", register=True)

FG_SIZE = (20, 16)  # PIL (width, height)
BG_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220), (220, 40, 220)]


def save_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")  # whatever the extension says (Adobe has .jpg PNGs too)


def make_fg(path_fg, path_alpha, seed):
    rng = np.random.default_rng(seed)
    width, height = FG_SIZE
    fg = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    alpha = np.zeros((height, width), np.uint8)
    alpha[:, 10:] = 255
    alpha[:, 5:10] = 128  # 128/255 * 255 + 0 = 127.999...: truncation gives 127, rounding 128
    alpha[0, 0] = 0
    fg[:, 5:10] = 255
    save_png(path_fg, fg)
    save_png(path_alpha, alpha)


def make_bg(path, colour, size):
    rng = np.random.default_rng(sum(colour))
    bg = np.clip(np.array(colour, np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    save_png(path, bg.astype(np.uint8))


@pytest.fixture
def tree(tmp_path):
    adobe = tmp_path / "Combined_Dataset"
    train = adobe / "Training_set"
    make_fg(str(train / "Adobe-licensed images" / "fg" / "a.png"),
            str(train / "Adobe-licensed images" / "alpha" / "a.png"), 1)
    make_fg(str(train / "Other" / "fg" / "b c.jpg"), str(train / "Other" / "alpha" / "b c.jpg"), 2)
    (train / "training_fg_names.txt").write_text("a.png\nb c.jpg\n")
    bg_names = [f"COCO_train2014_{k:012d}.jpg" for k in range(6)]
    (train / "training_bg_names.txt").write_text("\n".join(bg_names) + "\n")
    for k in range(6):  # COCO 2017 naming: the 2014 prefix is dropped
        size = (10, 7) if k % 2 == 0 else (40, 30)  # even ones are smaller than the foreground
        make_bg(str(tmp_path / "coco" / "train2017" / f"{k:012d}.jpg"), BG_COLOURS[k], size)

    test = adobe / "Test_set" / "Adobe-licensed images"
    make_fg(str(test / "fg" / "t.png"), str(test / "alpha" / "t.png"), 3)
    for k in range(2):
        trimap = np.full((FG_SIZE[1], FG_SIZE[0]), 128, np.uint8)
        trimap[:, :3] = 0
        trimap[:, 12 + k:] = 255
        save_png(str(test / "trimaps" / f"t_{k}.png"), trimap)
    (adobe / "Test_set" / "test_fg_names.txt").write_text("t.png\n")
    (adobe / "Test_set" / "test_bg_names.txt").write_text("2008_000001.jpg\n2008_000002.jpg\n")
    voc = tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages"
    make_bg(str(voc / "2008_000001.jpg"), BG_COLOURS[3], (8, 40))
    make_bg(str(voc / "2008_000002.jpg"), BG_COLOURS[4], (64, 64))
    return tmp_path


def run(tree, *extra):
    return prep.main(["--adobe_root", str(tree / "Combined_Dataset"), "--coco_dir", str(tree / "coco"),
                      "--voc_dir", str(tree / "VOCdevkit"), "--save_dir", str(tree / "out"),
                      "--train_bgs_per_fg", "3", "--test_bgs_per_fg", "2", "--quiet"] + list(extra))


def adobe_reference(fg_path, alpha_path, bg_path):
    """Adobe's rules written out independently: PIL bicubic to ceil sizes, top-left crop, truncate."""
    fg = np.asarray(Image.open(fg_path).convert("RGB"), np.float64)
    alpha = np.asarray(Image.open(alpha_path).convert("L"), np.float64)[:, :, None] / 255
    bg = Image.open(bg_path).convert("RGB")
    h, w = alpha.shape[:2]
    bw, bh = bg.size
    if w / bw > 1 or h / bh > 1:
        ratio = max(w / bw, h / bh)
        bg = bg.resize((math.ceil(bw * ratio), math.ceil(bh * ratio)), Image.BICUBIC)
    bg = np.asarray(bg, np.float64)[:h, :w]
    return np.floor(fg * alpha + bg * (1 - alpha)).astype(np.uint8), bg.astype(np.uint8)


def test_builds_adobe_composites_and_lists(tree):
    results = run(tree, "--train_composites", "--num_workers", "2")
    out = tree / "out"
    assert [(r["split"], r["composites"], r["written"]) for r in results] == [("test", 2, 2), ("train", 6, 6)]

    # training: fg i takes backgrounds 3i .. 3i+2, names without spaces, merged == Adobe's rule
    lines = (out / "train.txt").read_text().splitlines()
    assert lines[0] == "train/fg/a.png train/alpha/a.png train/bg/a_0.png"
    assert lines[5] == "train/fg/b_c.jpg train/alpha/b_c.jpg train/bg/b_c_2.png"
    adobe = tree / "Combined_Dataset" / "Training_set"
    for i, (fg_rel, fg_name) in enumerate([("Adobe-licensed images", "a.png"), ("Other", "b c.jpg")]):
        for k in range(3):
            bg_src = tree / "coco" / "train2017" / f"{3 * i + k:012d}.jpg"
            expected, expected_bg = adobe_reference(adobe / fg_rel / "fg" / fg_name,
                                                    adobe / fg_rel / "alpha" / fg_name, bg_src)
            name = f"{os.path.splitext(prep.safe_name(fg_name))[0]}_{k}.png"
            merged = np.asarray(Image.open(out / "train" / "merged" / name))
            np.testing.assert_array_equal(merged, expected)
            np.testing.assert_array_equal(np.asarray(Image.open(out / "train" / "bg" / name)), expected_bg)
            assert np.abs(merged[0, 0].astype(int) - BG_COLOURS[3 * i + k]).max() <= 25  # alpha 0: its bg
    # truncation, not rounding: fg 255 at alpha 128/255 over a dark channel stays below the rounded value
    fg = np.asarray(Image.open(adobe / "Adobe-licensed images" / "fg" / "a.png"), np.float64)
    bg = np.asarray(Image.open(out / "train" / "bg" / "a_0.png"), np.float64)
    exact = fg[:, 5:10] * (128 / 255) + bg[:, 5:10] * (127 / 255)
    got = np.asarray(Image.open(out / "train" / "merged" / "a_0.png"))[:, 5:10]
    np.testing.assert_array_equal(got, np.floor(exact))
    assert (np.round(exact) != np.floor(exact)).any()

    # test: merged + alpha + the official per-composite trimap, read by the evaluation dataset
    test_lines = (out / "test.txt").read_text().splitlines()
    assert test_lines == ["test/merged/t_0.png test/alpha/t.png test/trimap/t_0.png",
                          "test/merged/t_1.png test/alpha/t.png test/trimap/t_1.png"]
    val = MattingDataset(str(out), "test.txt", mode="val", list_format="image", transforms=[LoadImages()])
    sample = val[1]
    assert sample.image.shape == (16, 20, 3) and (sample.trimap[:, 13:] == 255).all()
    test_adobe = tree / "Combined_Dataset" / "Test_set" / "Adobe-licensed images"
    expected, _ = adobe_reference(test_adobe / "fg" / "t.png", test_adobe / "alpha" / "t.png",
                                  tree / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2008_000001.jpg")
    np.testing.assert_array_equal(io.to_uint8(val[0].image), expected)

    train = MattingDataset(str(out), "train.txt", mode="val", list_format="composition", random_bg=False,
                           transforms=[LoadImages()])
    assert len(train) == 6 and train[4].bg.shape == (16, 20, 3)

    # a second run keeps what is there
    again = run(tree, "--train_composites")
    assert [(r["written"], r["kept"]) for r in again] == [(0, 2), (0, 6)]


def test_online_list_points_at_the_original_backgrounds(tree):
    run(tree, "--splits", "train")
    first = (tree / "out" / "train.txt").read_text().splitlines()[0].split()
    assert first[2] == str(tree / "coco" / "train2017" / "000000000000.jpg")  # outside save_dir: absolute
    assert not (tree / "out" / "train" / "merged").exists()


def test_missing_inputs_are_one_line_errors(tree, capsys):
    os.remove(tree / "coco" / "train2017" / "000000000004.jpg")
    with pytest.raises(SystemExit) as exit_info:
        run(tree, "--splits", "train")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "1 background(s)" in err and "COCO_train2014_000000000004.jpg" in err
    with pytest.raises(SystemExit):
        run(tree, "--splits", "test", "--test_bgs_per_fg", "3")
    assert "expected 3 per foreground" in capsys.readouterr().err
    os.remove(tree / "Combined_Dataset" / "Test_set" / "Adobe-licensed images" / "trimaps" / "t_1.png")
    with pytest.raises(SystemExit):
        run(tree, "--splits", "test")
    assert "no trimap for composite 1 of 't.png'" in capsys.readouterr().err
