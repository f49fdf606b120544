#!/usr/bin/env bash
# One prepared run for a lent GPU machine (the `device` tool): set up, train configs/travel-gpu.yaml,
# evaluate it on every validation split and Derm7pt, and leave the artifact and figures in $OUT.
#   bash benchmarks/gpu_run.sh            (OUT defaults to ../runs/gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-../runs/gpu}
mkdir -p "$OUT" ../runs/init
python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install -q -e '.[serve,train]'
D=.venv-gpu/bin/dermalens
[ -d ../runs/init/ham10000-lite0 ] || { git archive 8139b9d models/default | tar -x -C ../runs/init \
  && mv ../runs/init/models/default ../runs/init/ham10000-lite0; }
/usr/bin/time -v $D train --config configs/travel-gpu.yaml --set out_dir="$OUT" --set device=cuda --no-progress \
  2> "$OUT/train-time.txt"
A="$OUT/travel-gpu/artifact"
$D evaluate --model "$A" --data ../shared/data/ham10000 --split configs/splits/ham10000-seed0.json --split-name val --out "$OUT/ham-val" --no-progress
$D evaluate --model "$A" --data ../shared/data/isic2019 --split configs/splits/isic2019-seed0.json --split-name val --out "$OUT/isic-val" --no-progress
$D evaluate --model "$A" --data ../shared/data/derm7pt --out "$OUT/derm7pt" --no-progress
