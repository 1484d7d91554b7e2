#!/usr/bin/env bash
# Prepare data and weights for a TIPC mode.
#   bash test_tipc/prepare.sh CONFIG MODE
# lite_train_lite_infer, lite_train_whole_infer: the bundled data/matting_demo (no download).
# whole_train_whole_infer: Composition-1k, built by tools/prepare_comp1k.py from Adobe's dataset (which is
#   only given out on request by its authors, so it cannot be downloaded here) plus the VGG16 ImageNet
#   weights named by `vgg16_url` in CONFIG.
# whole_infer: the pretrained weights named by `pretrained_model_url` in CONFIG.
set -euo pipefail
cd "$(dirname "$0")/.."
source test_tipc/common_func.sh
CONFIG=${1:?usage: $0 CONFIG MODE}
MODE=${2:?usage: $0 CONFIG MODE}
PYTHON=$(tipc_value "$CONFIG" python); PYTHON=${PYTHON:-python}

fetch() {  # fetch URL DEST: download once, atomically
  local url=$1 dest=$2
  [[ -f "$dest" ]] && { echo "have $dest"; return 0; }
  mkdir -p "$(dirname "$dest")"
  echo "downloading $url -> $dest"
  $PYTHON - "$url" "$dest" <<'PY'
import os, sys, tempfile, urllib.request
url, dest = sys.argv[1], sys.argv[2]
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest) or ".", prefix=".part-")
os.close(fd)
try:
    urllib.request.urlretrieve(url, tmp)
    os.replace(tmp, dest)
except Exception as err:
    os.unlink(tmp)
    sys.exit(f"error: cannot download {url}: {err}")
PY
}

case "$MODE" in
  lite_train_lite_infer|lite_train_whole_infer)
    if [[ ! -f data/matting_demo/val.txt ]]; then
      $PYTHON tools/make_demo_data.py
    fi
    $PYTHON test_tipc/make_lite_data.py
    echo "bundled data ready: data/matting_demo, test_tipc/data/lite" ;;
  whole_train_whole_infer)
    root=${COMP1K_ROOT:-test_tipc/data/Composition-1k}
    if [[ ! -f "$root/train.txt" ]]; then
      cat >&2 <<MSG
error: Composition-1k is not at $root.
  Ask Adobe for the Deep Image Matting dataset, get COCO 2014 train and VOC 2012 images, then run
    python tools/prepare_comp1k.py --help
  and point COMP1K_ROOT at the folder it writes.
MSG
      exit 2
    fi
    url=$(tipc_value "$CONFIG" vgg16_url)
    [[ -n "$url" ]] && fetch "$url" "test_tipc/data/weights/$(basename "$url")" ;;
  whole_infer)
    url=$(tipc_value "$CONFIG" pretrained_model_url)
    [[ -n "$url" ]] || { echo "error: $CONFIG names no pretrained_model_url" >&2; exit 2; }
    fetch "$url" "test_tipc/data/weights/$(basename "$url")" ;;
  *) echo "error: unknown mode '$MODE'" >&2; exit 2 ;;
esac
