from __future__ import annotations

import os

import optuna
import torch


os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
