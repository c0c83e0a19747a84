"""Prints about 20 MB of log lines while it trains, then exits with code 1."""
import sys

import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
line = "x" * 1000
for step in range(4):
    for _ in range(5000):
        print(line)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
print("last line of the log")
sys.exit(1)
