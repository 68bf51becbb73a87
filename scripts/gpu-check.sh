#!/usr/bin/env bash
# On a GPU machine: time the paper configuration's stages (GPU hours per stage) and run the
# tests of the training code there. Usage: scripts/gpu-check.sh [output folder]
# Works from a checkout without installing the package (PYTHONPATH=src), given torch,
# torchaudio, numpy, pandas, pyyaml, tqdm, soundfile and pytest.
set -uo pipefail
out=${1:-gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python3 -c "import sys; from asdflow.cli import main; sys.exit(main())" bench hours \
    --configfile config/dcase2025.yaml --out "$out/hours_dcase2025.json" 2>&1 | tee "$out/hours.log"
bench=$?
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_models.py tests/test_pretrain.py \
    tests/test_finetune.py tests/test_checkpoint.py 2>&1 | tee "$out/pytest.log"
tests=$?
echo "bench exit $bench, tests exit $tests"
exit $(( bench || tests ))
