#!/usr/bin/env bash
# VSML's published scale (population 1024, 500-step episodes, sigma 0.05, Adam 0.025, 28x28 MNIST) as one
# ES run over every GPU of several nodes. One process per GPU; JAX reads the coordinator, process count and
# id from SLURM (`--distributed`), the population is sharded over the global mesh, and only fitness scalars
# cross nodes. RUN_DIR must be on a file system every node sees (orbax checkpoints are written jointly).
#
#   sbatch launch/slurm_example.sh            # resubmit the same script to resume (it passes --resume)
#
#SBATCH --job-name=metalearn-vsml
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
set -euo pipefail
RUN_DIR=${RUN_DIR:-runs/vsml-paper}
srun python launch/meta_train.py --distributed --init-timeout 600 --resume --run-dir "$RUN_DIR" \
    --learner vsml --train-tasks mnist --test-tasks mnist fashion_mnist ordered:mnist:per_class=20 \
    --population 1024 --episode-length 500 --sigma 0.05 --lr 0.025 --generations 10001 \
    --eval-every 100 --checkpoint-every 50 --no-progress
