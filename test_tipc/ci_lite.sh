#!/usr/bin/env bash
# The TIPC lite runs that CI does after the unit tests: DIM-VGG16 (both variants) and closed-form.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for model in dim_vgg16 dim_vgg16_paddleseg closed_form; do
  config=test_tipc/configs/${model}/train_infer_python.txt
  bash test_tipc/prepare.sh "$config" lite_train_lite_infer || status=1
  bash test_tipc/test_train_inference_python.sh "$config" lite_train_lite_infer || status=1
done
exit $status
