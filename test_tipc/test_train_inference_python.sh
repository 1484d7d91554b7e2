#!/usr/bin/env bash
# TIPC: train -> evaluate -> export -> infer for one model, then accuracy checks.
#   bash test_tipc/test_train_inference_python.sh test_tipc/configs/dim_vgg16/train_infer_python.txt lite_train_lite_infer
# Every command's verdict is appended to test_tipc/output/<model>/<mode>/results_python.log as
# "Run successfully with command - ..." or "Run failed with command - ..."; GPU rows on a machine
# without a GPU are logged as "Skipped - ... (reason)". Exit status: non-zero if any command failed.
set -uo pipefail
cd "$(dirname "$0")/.."
source test_tipc/common_func.sh

CONFIG=${1:?usage: $0 CONFIG MODE}
MODE=${2:?usage: $0 CONFIG MODE}
case "$MODE" in
  lite_train_lite_infer|lite_train_whole_infer|whole_train_whole_infer|whole_infer) ;;
  *) echo "error: unknown mode '$MODE'" >&2; exit 2 ;;
esac
[[ -f "$CONFIG" ]] || { echo "error: $CONFIG: config not found" >&2; exit 2; }

MODEL_NAME=$(tipc_value "$CONFIG" model_name)
PYTHON=$(tipc_value "$CONFIG" python); PYTHON=${PYTHON:-python}
OUT=test_tipc/output/${MODEL_NAME}/${MODE}
RESULTS_LOG=$OUT/results_python.log
rm -rf "$OUT"; mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
failures=0
note_status() { [[ $1 -eq 0 ]] || failures=$((failures + 1)); }

echo "TIPC ${MODEL_NAME} ${MODE} ($(date -u +%Y-%m-%dT%H:%M:%SZ))" > "$RESULTS_LOG"

# ---- train ---------------------------------------------------------------------------------
ITERS=$(tipc_value "$CONFIG" --iters "$MODE")
BATCH=$(tipc_value "$CONFIG" --batch_size "$MODE")
WEIGHTS_NAME=$(tipc_value "$CONFIG" train_model_name)
SEED=$(tipc_value "$CONFIG" train_seed)   # check_accuracy.py rebuilds the untrained network with it
TRAINED=""
if [[ "$MODE" == whole_infer ]]; then
  TRAINED=$(tipc_value "$CONFIG" pretrained_model_path)
  log_skip "training (mode $MODE uses pretrained weights ${TRAINED})"
elif [[ -z "$(tipc_value "$CONFIG" trainer)" ]]; then
  log_skip "training ($(tipc_value "$CONFIG" train_skip_reason))"
else
  for trainer in $(tipc_list "$CONFIG" trainer); do
    cmd=$(tipc_value "$CONFIG" "$trainer")
    save_dir=$OUT/${trainer}
    if [[ "$trainer" == dist_train ]] && have_gpu; then
      cmd="${cmd/--nproc_per_node 2/--gpus 0,1}"
    fi
    run_logged "$OUT/logs" "$trainer" "$PYTHON $cmd --iters $ITERS --batch_size $BATCH ${SEED:+--seed $SEED} --save_dir $save_dir"
    status=$?; note_status $status
    if [[ $status -eq 0 && -z "$TRAINED" ]]; then TRAINED=$save_dir/$WEIGHTS_NAME; fi
  done
fi
MODEL_ARG=""
[[ -n "$TRAINED" ]] && MODEL_ARG="--model_path $TRAINED"

# ---- evaluate ------------------------------------------------------------------------------
eval_cmd=$(tipc_value "$CONFIG" eval)
if [[ -n "$eval_cmd" ]]; then
  run_logged "$OUT/logs" eval "$PYTHON $eval_cmd $MODEL_ARG --save_dir $OUT/eval"
  note_status $?
fi

# ---- export --------------------------------------------------------------------------------
export_cmd=$(tipc_value "$CONFIG" norm_export)
EXPORTED=""
if [[ -z "$export_cmd" ]]; then
  log_skip "export ($(tipc_value "$CONFIG" export_skip_reason))"
else
  run_logged "$OUT/logs" export "$PYTHON $export_cmd $MODEL_ARG --save_dir $OUT/export"
  status=$?; note_status $status
  [[ $status -eq 0 ]] && EXPORTED=$OUT/export
fi

# ---- infer over the grid -------------------------------------------------------------------
infer_script=$(tipc_value "$CONFIG" inference)
IMAGES=$(tipc_value "$CONFIG" --image_path "$MODE")
TRIMAPS=$(tipc_value "$CONFIG" --trimap_path "$MODE")
infer_model=$(tipc_value "$CONFIG" infer_model)   # "exported" or a config for tools/predict.py
PRECISION=$(tipc_value "$CONFIG" --precision)
if [[ -z "$infer_script" ]]; then
  log_skip "inference (no inference command in $CONFIG)"
elif [[ "$infer_model" == exported && -z "$EXPORTED" ]]; then
  log_skip "inference (export failed or was skipped)"
  failures=$((failures + 1))
else
  for device in $(tipc_list "$CONFIG" --device); do
    if [[ "$device" == gpu ]]; then
      if ! have_gpu; then log_skip "inference on gpu (no CUDA device on this machine)"; continue; fi
      threads_list=1; mkldnn_list=False
    else
      threads_list=$(tipc_list "$CONFIG" --cpu_threads); mkldnn_list=$(tipc_list "$CONFIG" --enable_mkldnn)
    fi
    for threads in $threads_list; do
      for mkldnn in $mkldnn_list; do
        for batch in $(tipc_list "$CONFIG" --batch_size_infer); do
          tag=${device}_threads${threads}_mkldnn${mkldnn}_batch${batch}
          if [[ "$infer_model" == exported ]]; then
            cmd="$PYTHON $infer_script --config $EXPORTED/deploy.yaml --image_path $IMAGES --trimap_path $TRIMAPS"
            cmd+=" --device $device --cpu_threads $threads --enable_mkldnn $mkldnn --batch_size $batch"
            cmd+=" --precision ${PRECISION:-fp32} --benchmark --save_dir $OUT/infer_$tag"
          else
            cmd="$PYTHON $infer_script --config $infer_model $MODEL_ARG --image_path $IMAGES --trimap_path $TRIMAPS"
            cmd+=" --save_dir $OUT/infer_$tag"
          fi
          run_logged "$OUT/logs" "infer_$tag" "$cmd"
          note_status $?
        done
      done
    done
  done
fi

# ---- accuracy ------------------------------------------------------------------------------
run_logged "$OUT/logs" accuracy "$PYTHON test_tipc/check_accuracy.py --tipc_config $CONFIG --mode $MODE --output $OUT ${TRAINED:+--model_path $TRAINED}"
note_status $?

echo "TIPC ${MODEL_NAME} ${MODE}: ${failures} failed; log: ${RESULTS_LOG}"
[[ $failures -eq 0 ]]
