"""Build Composition-1k from Adobe's Deep Image Matting dataset and the COCO / VOC backgrounds.

    python tools/prepare_comp1k.py --adobe_root /data/Combined_Dataset --coco_dir /data/coco/train2014 \
        --voc_dir /data/VOCdevkit --save_dir data/Composition-1k --num_workers 4

Follows Adobe's compositing rules (as Adobe's compose script that made the benchmark and
mmediting's preprocess_comp1k_dataset.py do it; the counts are the DIM paper's, Xu et al. 2017):

* the official name lists pair foreground i with backgrounds i*K .. i*K+K-1 of the background list
  (K = 100 for the 431 training foregrounds and COCO, K = 20 for the 50 test foregrounds and VOC):
  43,100 training and 1,000 test composites;
* a background smaller than the foreground is scaled by ratio = max(w/bw, h/bh) to
  ceil(bw*ratio) x ceil(bh*ratio) with PIL's bicubic filter; then its top-left w x h is used
  (``ppmatting.transforms.fit_background``, which training's FitBackground uses too);
* composite = fg * alpha + bg * (1 - alpha) on 0..255 values, alpha = alpha_u8 / 255, truncated
  to uint8 (not rounded: that is how the benchmark images were made).

Output in --save_dir (names without spaces, so list files split on whitespace):

* ``test/merged/<fg>_<i>.png``, ``test/alpha/<fg>.png``, ``test/trimap/<fg>_<i>.png`` and
  ``test.txt`` (``merged alpha trimap``: the evaluation set);
* ``train/fg/``, ``train/alpha/`` (copies, hard links when possible) and ``train.txt``
  (``fg alpha bg``: online composition with Adobe's fixed pairs; set ``random_bg: false``);
* with --train_composites also ``train/merged/<fg>_<i>.png``, the fitted backgrounds
  ``train/bg/<fg>_<i>.png`` (then used by train.txt) and ``train_merged.txt`` (``merged alpha``).

Existing outputs are kept (an interrupted run continues) unless --overwrite is given. Every file is
written atomically. configs/dim/_base_/composition1k.yml reads this layout.
"""
import argparse
import glob
import os
import shutil
import sys
from multiprocessing import get_context

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from ppmatting.transforms import fit_background  # noqa: E402
from ppmatting.utils import io  # noqa: E402
from ppmatting.utils.errors import InputError, run_cli  # noqa: E402

TRAIN_FG_DIRS = ("Training_set/Adobe-licensed images/fg", "Training_set/Other/fg")
TRAIN_ALPHA_DIRS = ("Training_set/Adobe-licensed images/alpha", "Training_set/Other/alpha")
TEST_FG_DIRS = ("Test_set/Adobe-licensed images/fg",)
TEST_ALPHA_DIRS = ("Test_set/Adobe-licensed images/alpha",)
TEST_TRIMAP_DIR = "Test_set/Adobe-licensed images/trimaps"
NAME_LISTS = {"train": ("Training_set/training_fg_names.txt", "Training_set/training_bg_names.txt"),
              "test": ("Test_set/test_fg_names.txt", "Test_set/test_bg_names.txt")}
COCO_2014_PREFIX = "COCO_train2014_"  # COCO 2017 file names drop it


# ---- Adobe's compositing rules (pure functions; the background rule is fit_background) ---------
def composite_u8(fg_u8, alpha_u8, bg_u8):
    """``fg * a + bg * (1 - a)`` with a = alpha/255, truncated to uint8 (Adobe's composites).

    fg_u8, bg_u8: uint8 H x W x 3; alpha_u8: uint8 H x W. Returns uint8 H x W x 3.
    """
    alpha = alpha_u8.astype(np.float64)[:, :, None] / 255.0
    merged = fg_u8.astype(np.float64) * alpha + bg_u8.astype(np.float64) * (1.0 - alpha)
    return merged.astype(np.uint8)


def open_pil(path):
    """The file as a PIL image, its header's size checked first (``io.check_image_header``):
    Adobe's and COCO's files are read with PIL, as Adobe's script did."""
    import io as bytes_io

    from PIL import Image

    data = io.read_file_bytes(path)
    io.check_image_header(path, data)
    try:
        return Image.open(bytes_io.BytesIO(data.tobytes()))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"{path}: not a readable image ({err})") from None


def read_pil_rgb(path):
    from PIL import Image

    try:
        with open_pil(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"{path}: not a readable image ({err})") from None


def read_pil_alpha(path):
    """Alpha as uint8 H x W. Adobe's mattes are gray; RGB ones use the first channel as
    mmediting's RGB read followed by per-channel use does."""
    from PIL import Image

    try:
        with open_pil(path) as image:
            if image.mode in ("L", "P", "1", "I;16", "I"):
                gray = np.asarray(image.convert("L"))
            else:
                gray = np.asarray(image.convert("RGB"))[:, :, 0]
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"{path}: not a readable alpha matte ({err})") from None
    return np.ascontiguousarray(gray)


# ---- names and paths ----------------------------------------------------------------------------
def read_names(path):
    if not os.path.isfile(path):
        raise InputError(f"{path}: official name list not found (is --adobe_root the folder holding "
                         f"Training_set/ and Test_set/?)")
    with open(path, "r", encoding="utf-8") as handle:
        names = [line.strip() for line in handle if line.strip()]
    if not names:
        raise InputError(f"{path}: name list is empty")
    return names


def safe_name(name):
    """File name without whitespace (list files split columns on whitespace)."""
    return "_".join(name.split())


def find_in(folders, name, what):
    for folder in folders:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    raise InputError(f"{what} '{name}' not found in {' or '.join(folders)}")


def background_dirs(kind, folder):
    """Folders that may hold the background images for 'coco' or 'voc'."""
    if not folder or not os.path.isdir(folder):
        flag = "--coco_dir" if kind == "coco" else "--voc_dir"
        raise InputError(f"{folder}: {flag} folder not found")
    if kind == "coco":
        subs = ["", "train2014", "train2017", "images/train2014", "images/train2017"]
    else:
        subs = ["", "JPEGImages", "VOC2012/JPEGImages", "VOCdevkit/VOC2012/JPEGImages"]
        subs += sorted(os.path.relpath(p, folder) for p in
                       glob.glob(os.path.join(folder, "**", "VOC20*", "JPEGImages"), recursive=True))
    return [os.path.join(folder, s) for s in subs if os.path.isdir(os.path.join(folder, s))]


def find_background(dirs, name):
    candidates = [name]
    if name.startswith(COCO_2014_PREFIX):
        candidates.append(name[len(COCO_2014_PREFIX):])
    for folder in dirs:
        for candidate in candidates:
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    return None


def find_trimap(trimap_dir, fg_name, index):
    """The official test trimap of composite ``index`` of ``fg_name``: ``<stem>_<index>.<ext>``
    (one per composite), else ``<stem>.<ext>`` (one per foreground in some releases)."""
    stem, ext = os.path.splitext(fg_name)
    extensions = [ext] + [e for e in io.IMAGE_EXTENSIONS if e != ext.lower()]
    for base in (f"{stem}_{index}", stem):
        for extension in extensions:
            path = os.path.join(trimap_dir, base + extension)
            if os.path.isfile(path):
                return path
    raise InputError(f"{trimap_dir}: no trimap for composite {index} of '{fg_name}' "
                     f"(looked for {stem}_{index}{ext} and {stem}{ext})")


def link_or_copy(src, dst, overwrite):
    if os.path.exists(dst) and not overwrite:
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = f"{dst}.tmp-{os.getpid()}"
    try:
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---- planning ----------------------------------------------------------------------------------
def plan_split(adobe_root, split, bg_dirs, bgs_per_fg):
    """Resolve every file of one split before any work starts; returns a list of foreground jobs:
    ``{fg_name, fg, alpha, bgs: [(index, bg_path, trimap_path or None)]}``."""
    fg_list, bg_list = (os.path.join(adobe_root, p) for p in NAME_LISTS[split])
    fg_names, bg_names = read_names(fg_list), read_names(bg_list)
    if len(bg_names) != len(fg_names) * bgs_per_fg:
        raise InputError(f"{bg_list}: {len(bg_names)} backgrounds for {len(fg_names)} foregrounds in "
                         f"{fg_list}; expected {bgs_per_fg} per foreground "
                         f"({len(fg_names) * bgs_per_fg})")
    fg_dirs, alpha_dirs = ((TRAIN_FG_DIRS, TRAIN_ALPHA_DIRS) if split == "train"
                           else (TEST_FG_DIRS, TEST_ALPHA_DIRS))
    fg_dirs = [os.path.join(adobe_root, d) for d in fg_dirs]
    alpha_dirs = [os.path.join(adobe_root, d) for d in alpha_dirs]
    trimap_dir = os.path.join(adobe_root, TEST_TRIMAP_DIR)
    jobs, missing = [], []
    safe_names = {}
    for i, fg_name in enumerate(fg_names):
        if safe_name(fg_name) in safe_names:
            raise InputError(f"{fg_list}: '{fg_name}' and '{safe_names[safe_name(fg_name)]}' give the "
                             f"same output name")
        safe_names[safe_name(fg_name)] = fg_name
        job = {"fg_name": fg_name, "fg": find_in(fg_dirs, fg_name, "foreground"),
               "alpha": find_in(alpha_dirs, fg_name, "alpha matte"), "bgs": []}
        for k in range(bgs_per_fg):
            bg_name = bg_names[i * bgs_per_fg + k]
            bg_path = find_background(bg_dirs, bg_name)
            if bg_path is None:
                missing.append(bg_name)
                continue
            trimap = find_trimap(trimap_dir, fg_name, k) if split == "test" else None
            job["bgs"].append((k, bg_path, trimap))
        jobs.append(job)
    if missing:
        raise InputError(f"{len(missing)} background(s) of {bg_list} not found in "
                         f"{' or '.join(bg_dirs)}; first: '{missing[0]}'")
    return jobs


# ---- work --------------------------------------------------------------------------------------
def composite_name(fg_name, index):
    return f"{safe_name(os.path.splitext(fg_name)[0])}_{index}.png"


def process_foreground(task):
    """Write the composites of one foreground (run in a worker process). Returns the number of
    composites written and skipped."""
    job, split, save_dir, write_merged, write_bg, overwrite = task
    written = skipped = 0
    fg = alpha = None
    for index, bg_path, _ in job["bgs"]:
        name = composite_name(job["fg_name"], index)
        merged_path = os.path.join(save_dir, split, "merged", name)
        bg_out = os.path.join(save_dir, split, "bg", name)
        todo_merged = write_merged and (overwrite or not os.path.isfile(merged_path))
        todo_bg = write_bg and (overwrite or not os.path.isfile(bg_out))
        if not (todo_merged or todo_bg):
            skipped += 1
            continue
        if fg is None:
            fg_image = read_pil_rgb(job["fg"])
            fg = np.asarray(fg_image)
            alpha = read_pil_alpha(job["alpha"])
            io.check_same_size(alpha.shape, job["alpha"], fg.shape, job["fg"])
        height, width = alpha.shape
        bg = fit_background(np.asarray(read_pil_rgb(bg_path)), height, width)
        if todo_bg:
            io.write_image(bg_out, bg)
        if todo_merged:
            io.write_image(merged_path, composite_u8(fg, alpha, bg))
        written += 1
    return written, skipped


def run_tasks(tasks, num_workers, desc, progress):
    from tqdm import tqdm
    total = sum(len(task[0]["bgs"]) for task in tasks)
    written = skipped = 0
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, file=sys.stderr) as bar:
        if num_workers > 0:
            # fork: workers inherit the resolved jobs; this tool starts no threads before it
            with get_context("fork").Pool(num_workers) as pool:
                for w, s in pool.imap_unordered(process_foreground, tasks):
                    written, skipped = written + w, skipped + s
                    bar.update(w + s)
        else:
            for task in tasks:
                w, s = process_foreground(task)
                written, skipped = written + w, skipped + s
                bar.update(w + s)
    return written, skipped


def list_path(path, save_dir, separator):
    """A list-file column: relative to save_dir when inside it, else absolute."""
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, save_dir)
    column = absolute if rel.startswith("..") else rel
    what = "whitespace" if separator is None else repr(separator)
    if (separator is None and any(c.isspace() for c in column)) or (separator and separator in column):
        raise InputError(f"{absolute}: the path contains {what}, which separates list columns; use "
                         f"another folder or --separator")
    return column


def write_list(path, rows, save_dir, separator):
    joiner = separator or " "
    text = "".join(joiner.join(list_path(p, save_dir, separator) for p in row) + "\n" for row in rows)
    io.atomic_write_bytes(path, text.encode("utf-8"))
    return path


def prepare_test(args, save_dir, progress):
    jobs = plan_split(args.adobe_root, "test", background_dirs("voc", args.voc_dir), args.test_bgs_per_fg)
    rows = []
    for job in jobs:
        safe = safe_name(job["fg_name"])
        alpha_out = os.path.join(save_dir, "test", "alpha", os.path.splitext(safe)[0]
                                 + os.path.splitext(job["alpha"])[1])
        link_or_copy(job["alpha"], alpha_out, args.overwrite)
        for index, _, trimap in job["bgs"]:
            name = composite_name(job["fg_name"], index)
            trimap_out = os.path.join(save_dir, "test", "trimap",
                                      os.path.splitext(name)[0] + os.path.splitext(trimap)[1])
            link_or_copy(trimap, trimap_out, args.overwrite)
            rows.append((os.path.join(save_dir, "test", "merged", name), alpha_out, trimap_out))
    tasks = [(job, "test", save_dir, True, args.test_bg, args.overwrite) for job in jobs]
    written, skipped = run_tasks(tasks, args.num_workers, "test composites", progress)
    lst = write_list(os.path.join(save_dir, "test.txt"), rows, save_dir, args.separator)
    return {"split": "test", "foregrounds": len(jobs), "composites": len(rows), "written": written,
            "kept": skipped, "list": lst}


def prepare_train(args, save_dir, progress):
    jobs = plan_split(args.adobe_root, "train", background_dirs("coco", args.coco_dir),
                      args.train_bgs_per_fg)
    rows, merged_rows = [], []
    for job in jobs:
        safe = safe_name(job["fg_name"])
        fg_out = os.path.join(save_dir, "train", "fg", safe)
        alpha_out = os.path.join(save_dir, "train", "alpha",
                                 os.path.splitext(safe)[0] + os.path.splitext(job["alpha"])[1])
        link_or_copy(job["fg"], fg_out, args.overwrite)
        link_or_copy(job["alpha"], alpha_out, args.overwrite)
        for index, bg_path, _ in job["bgs"]:
            name = composite_name(job["fg_name"], index)
            bg_column = os.path.join(save_dir, "train", "bg", name) if args.train_composites else bg_path
            rows.append((fg_out, alpha_out, bg_column))
            merged_rows.append((os.path.join(save_dir, "train", "merged", name), alpha_out))
    result = {"split": "train", "foregrounds": len(jobs), "composites": len(rows), "written": 0, "kept": 0}
    if args.train_composites:
        tasks = [(job, "train", save_dir, True, True, args.overwrite) for job in jobs]
        result["written"], result["kept"] = run_tasks(tasks, args.num_workers, "training composites",
                                                      progress)
        result["merged_list"] = write_list(os.path.join(save_dir, "train_merged.txt"), merged_rows,
                                           save_dir, args.separator)
    result["list"] = write_list(os.path.join(save_dir, "train.txt"), rows, save_dir, args.separator)
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adobe_root", required=True,
                        help="Adobe's dataset folder (holding Training_set/ and Test_set/)")
    parser.add_argument("--coco_dir", help="COCO train2014 (or train2017) images, or their parent")
    parser.add_argument("--voc_dir", help="PASCAL VOC JPEGImages, or the VOCdevkit / VOC2012 folder")
    parser.add_argument("--save_dir", default="data/Composition-1k", help="output folder")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], choices=("train", "test"))
    parser.add_argument("--train_composites", action="store_true",
                        help="also write the 43,100 training composites and fitted backgrounds")
    parser.add_argument("--test_bg", action="store_true",
                        help="also write the fitted test backgrounds (test/bg)")
    parser.add_argument("--train_bgs_per_fg", type=int, default=100)
    parser.add_argument("--test_bgs_per_fg", type=int, default=20)
    parser.add_argument("--num_workers", type=int, default=0, help="worker processes (0: this one)")
    parser.add_argument("--separator", default=None,
                        help="list column separator (default: a space; paths must then have none)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite existing outputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


@run_cli
def main(argv=None):
    args = parse_args(argv)
    if not os.path.isdir(args.adobe_root):
        raise InputError(f"{args.adobe_root}: --adobe_root folder not found")
    if "train" in args.splits and not args.coco_dir:
        raise InputError("--coco_dir is required for the training split (or pass --splits test)")
    if "test" in args.splits and not args.voc_dir:
        raise InputError("--voc_dir is required for the test split (or pass --splits train)")
    if args.train_bgs_per_fg < 1 or args.test_bgs_per_fg < 1:
        raise InputError("--train_bgs_per_fg and --test_bgs_per_fg must be positive")
    save_dir = os.path.abspath(io.check_output_dir(args.save_dir))
    os.makedirs(save_dir, exist_ok=True)
    progress = not args.quiet
    results = []
    if "test" in args.splits:
        results.append(prepare_test(args, save_dir, progress))
    if "train" in args.splits:
        results.append(prepare_train(args, save_dir, progress))
    for r in results:
        print(f"{r['split']}: {r['foregrounds']} foregrounds, {r['composites']} composites "
              f"({r['written']} written, {r['kept']} already there); list: {r['list']}"
              + (f", {r['merged_list']}" if r.get("merged_list") else ""))
    return results


if __name__ == "__main__":
    main()
