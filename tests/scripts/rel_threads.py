"""Leaves a non-daemon thread running after training (a logger, say)."""
import threading
import time

import torch

threading.Thread(target=lambda: time.sleep(3600), daemon=False).start()
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(3):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
