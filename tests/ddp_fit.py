"""Run by test_train under torchrun: fit the tiny model on a dataset (DDP when WORLD_SIZE > 1).

Usage: python ddp_fit.py ANNOTATIONS OUT_DIR
"""

import sys

import torch

from amodal_sam import AmodalSAM
from amodal_sam.data.readers import load_dataset
from amodal_sam.distributed import leave_process_group
from amodal_sam.train import TrainOptions, fit

OPTIONS = TrainOptions(epochs=1, batch_size=4, lr=1e-3, warmup_steps=1, seed=3, progress=False)

if __name__ == "__main__":
    torch.set_num_threads(1)
    annotations, out_dir = sys.argv[1], sys.argv[2]
    fit(AmodalSAM.random("tiny", seed=0), load_dataset(annotations), out_dir, OPTIONS, device="cpu")
    leave_process_group()
