#!/bin/bash
# One device call (issue 10): four trainings side by side on real FER2013 / FERPlus, each in its own root.
# Env: LIMIT (seconds for the whole script), ARRAYS (npz.xz), SCALE (multiplies every epoch count), REHEARSAL.
set -u
start=$(date +%s); LIMIT=${LIMIT:-540}
left() { echo $(( start + LIMIT - $(date +%s) )); }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; LOG=$OUT/log.txt
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ -z "${REHEARSAL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  nvidia-smi -L >> "$LOG" 2>&1; nproc >> "$LOG"
fi
PY=${PY:-python3}
$PY -c "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())" >> "$LOG" 2>&1
quiet() { grep --line-buffered -v -E "^(WARNING|I0000|E0000|W0000)|absl::InitializeLog|cudart_stub" ; }

raw=/tmp/fer_raw
$PY .gpu/to_csv.py "${ARRAYS:-.gpu/fer2013-arrays.npz.xz}" $raw >> "$LOG" 2>&1 || exit 1
$PY -c "import lzma,sys; open('$raw/fer2013new.csv','wb').write(lzma.open('${FERPLUS:-.gpu/fer2013new.csv.xz}').read())" || exit 1
echo "data written ($(left) s left)" >> "$LOG"
[ -z "${REHEARSAL:-}" ] && { nvidia-smi dmon -s um -d 5 > "$OUT/dmon.txt" 2>&1 & }

n() { $PY -c "print(max(1, round($1 * ${SCALE:-1})))"; }
launch() {   # name, then run.py all options
  local name=$1; shift
  ( $PY run.py --root /tmp/$name download --task expressions --from $raw \
    && timeout -s TERM -k 60 $(( $(left) - 45 )) $PY run.py --root /tmp/$name all --task expressions "$@" ) 2>&1 \
    | quiet > "$OUT/$name.txt" &
  pids="${pids:-} $!"
}
e=$(n 50); launch vgg_std --recipe best --augment standard --schedule cosine --warmup-epochs 3 --label-smoothing 0.1 --epochs $e --patience $e
e=$(n 60); launch compact60 --recipe fast --epochs $e --patience $e
e=$(n 40); launch densenet40 --recipe fast --model densenet --epochs $e --patience $e
e=$(n 60); launch ferplus60 --recipe fast --labels ferplus --epochs $e --patience $e
wait $pids   # not a bare wait: nvidia-smi dmon never ends (the first call ran out of time on it)
echo "all ended ($(left) s left)" >> "$LOG"
for name in vgg_std compact60 densenet40 ferplus60; do
  runs=/tmp/$name/data/runs/challenges-in-representation-learning-facial-expression-recognition-challenge
  run=$(cat $runs/latest 2>/dev/null)
  [ -n "$run" ] && tar -C $runs/$run -cf "$OUT/$name.tar" --exclude='*.keras' --exclude='*.weights.h5' --exclude='backup*' .
  grep -h "train  \|predict  " "$OUT/$name.txt" | cut -c1-400
done | tee -a "$LOG"
echo "done ($(left) s left)" >> "$LOG"
