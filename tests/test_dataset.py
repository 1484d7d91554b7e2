"""MattingDataset: both list forms, backgrounds drawn per epoch, clear errors."""
import numpy as np
import pytest

from ppmatting.datasets import MattingDataset
from ppmatting.transforms import Composite, FitBackground, GenerateTrimap, LoadImages, Normalize, Resize
from ppmatting.utils import io
from ppmatting.utils.errors import InputError
from ppmatting.utils.synthetic import make_foreground


@pytest.fixture
def tiny_tree(tmp_path):
    rng = np.random.default_rng(0)
    comp_lines, image_lines = [], []
    for i in range(3):
        fg, alpha = make_foreground("furry", (48, 40), rng, supersample=2)
        io.write_image(tmp_path / "fg" / f"{i}.png", fg)
        io.write_image(tmp_path / "alpha" / f"{i}.png", alpha)
        comp_lines.append(f"fg/{i}.png|alpha/{i}.png")
        image_lines.append(f"fg/{i}.png alpha/{i}.png")
    for j in range(4):
        io.write_image(tmp_path / "bg" / f"{j}.jpg", np.full((30, 30, 3), j / 4, np.float32))
    (tmp_path / "comp.txt").write_text("\n".join(comp_lines) + "\n")
    (tmp_path / "bg.txt").write_text("\n".join(f"bg/{j}.jpg" for j in range(4)) + "\n")
    (tmp_path / "image.txt").write_text("# a comment\n" + "\n".join(image_lines) + "\n\n")
    return tmp_path


def composition_dataset(root, **kwargs):
    transforms = [LoadImages(), FitBackground(), Resize([32, 32]), Composite(), GenerateTrimap([1, 5]),
                  Normalize()]
    return MattingDataset(str(root), "comp.txt", list_format="composition", separator="|", bg_file="bg.txt",
                          transforms=transforms, **kwargs)


def test_composition_form_draws_backgrounds_per_epoch(tiny_tree):
    dataset = composition_dataset(tiny_tree, seed=3)
    assert len(dataset) == 3
    batch = dataset[0]
    assert set(batch) == {"img", "trimap", "alpha", "image01", "fg", "bg", "comp_valid"}
    assert batch["img"].shape == (3, 32, 32) and batch["comp_valid"] == 1.0
    np.testing.assert_array_equal(batch["img"], dataset[0]["img"])  # same epoch, same sample
    seen = set()
    for epoch in range(12):
        dataset.set_epoch(epoch)
        seen.add(round(float(dataset[0]["bg"].mean()), 2))
    assert len(seen) >= 3  # backgrounds really change between epochs


def test_image_form_val_mode_returns_full_size_samples(tiny_tree):
    dataset = MattingDataset(str(tiny_tree), "image.txt", mode="val", list_format="image",
                             transforms=[LoadImages()])
    sample = dataset[1]
    assert sample.name == "1" and sample.image.shape == (48, 40, 3) and sample.trimap is None
    assert sample.alpha.dtype == np.float32 and sample.alpha.max() <= 1.0


def test_bad_lists_give_one_line_errors(tiny_tree):
    (tiny_tree / "bad.txt").write_text("only_one_column.png\n")
    with pytest.raises(InputError, match=r"bad.txt:1: expected 2 to 3 columns"):
        MattingDataset(str(tiny_tree), "bad.txt")
    with pytest.raises(InputError, match="list file not found"):
        MattingDataset(str(tiny_tree), "nope.txt")
    with pytest.raises(InputError, match="composition lists need backgrounds"):
        MattingDataset(str(tiny_tree), "image.txt", list_format="composition")
    (tiny_tree / "missing.txt").write_text("fg/9.png alpha/9.png\n")
    dataset = MattingDataset(str(tiny_tree), "missing.txt", mode="val", transforms=[LoadImages()])
    with pytest.raises(InputError, match=r"fg/9.png: file not found"):
        dataset[0]


def test_size_mismatch_names_both_files(tiny_tree):
    io.write_image(tiny_tree / "alpha" / "small.png", np.zeros((10, 10), np.float32))
    (tiny_tree / "mismatch.txt").write_text("fg/0.png alpha/small.png\n")
    dataset = MattingDataset(str(tiny_tree), "mismatch.txt", mode="val", transforms=[LoadImages()])
    with pytest.raises(InputError, match=r"size mismatch: .*small.png is 10x10 \(WxH\) but .*0.png is 40x48"):
        dataset[0]


def test_reads_16bit_rgba_and_grayscale(tmp_path):
    alpha16 = (np.linspace(0, 1, 20 * 20).reshape(20, 20) * 65535).astype(np.uint16)
    io.write_image(tmp_path / "a16.png", alpha16)
    np.testing.assert_allclose(io.read_alpha(tmp_path / "a16.png"), alpha16 / 65535.0, atol=1e-6)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 100
    io.write_image(tmp_path / "cut.png", rgba)
    image, alpha = io.read_rgba(tmp_path / "cut.png")
    assert image.shape == (8, 8, 3) and abs(image[0, 0, 0] - 200 / 255) < 1e-6
    assert abs(alpha[0, 0] - 100 / 255) < 1e-6
    io.write_image(tmp_path / "gray.png", np.full((5, 6), 77, np.uint8))
    assert io.read_image(tmp_path / "gray.png").shape == (5, 6, 3)
    io.write_image(tmp_path / "tri.png", np.array([[0, 10, 127, 130, 250]], np.uint8))
    np.testing.assert_array_equal(io.read_trimap(tmp_path / "tri.png"), [[0, 0, 128, 128, 255]])


def test_corrupt_file_message(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="broken.png: not a readable image"):
        io.read_image(tmp_path / "broken.png")
