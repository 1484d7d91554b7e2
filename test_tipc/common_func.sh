#!/usr/bin/env bash
# Helpers shared by the TIPC scripts: read `key:value` lines and log command outcomes.

# tipc_value CONFIG KEY [MODE]: the value of the first `KEY:...` line. A value written as
# `mode_a=1|mode_b=2` is resolved for MODE; `null` becomes empty.
tipc_value() {
  local config=$1 key=$2 mode=${3:-}
  local line value
  line=$(grep -m1 -E "^${key}:" "$config" || true)
  value=${line#*:}
  if [[ -n "$mode" && "$value" == *"$mode="* ]]; then
    value=$(tr '|' '\n' <<< "$value" | grep -m1 "^${mode}=" | cut -d= -f2-)
  fi
  [[ "$value" == "null" ]] && value=""
  printf '%s' "$value"
}

# tipc_list CONFIG KEY: the `|`-separated choices of KEY, one a line.
tipc_list() {
  tipc_value "$1" "$2" | tr '|' '\n' | sed '/^$/d'
}

# run_logged LOG_DIR NAME COMMAND...: run a command, keep its output, append the verdict to
# results_python.log in TIPC's wording. Returns the command's status.
run_logged() {
  local log_dir=$1 name=$2
  shift 2
  local cmd="$*" out="$log_dir/${name}.log" status=0
  mkdir -p "$log_dir"
  local begin=$(date +%s)
  bash -c "$cmd" > "$out" 2>&1 || status=$?
  local took=$(( $(date +%s) - begin ))
  if [[ $status -eq 0 ]]; then
    echo "Run successfully with command - ${MODEL_NAME:-model} - ${cmd} (${took} s, log ${out})" | tee -a "$RESULTS_LOG"
  else
    echo "Run failed with command - ${MODEL_NAME:-model} - ${cmd} (status ${status}, ${took} s, log ${out})" | tee -a "$RESULTS_LOG"
    tail -n 15 "$out" | sed 's/^/    | /'
  fi
  return $status
}

log_skip() {
  echo "Skipped - ${MODEL_NAME:-model} - $1" | tee -a "$RESULTS_LOG"
}

have_gpu() {
  ${PYTHON:-python} -c "import paddle,sys; sys.exit(0 if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else 1)" 2>/dev/null
}
