"""Trains three steps, then is killed by the OS (as the OOM killer does)."""
import os
import signal

import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(10):
    if step == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
