"""Imports a module beside it, as scripts in a project folder do."""
import json
import os
import sys

import torch
from rel_neighbour import make_model

if os.environ.get("REL_REPORT"):
    with open(os.environ["REL_REPORT"], "w") as f:
        json.dump({"cwd": os.getcwd(), "path0": sys.path[0]}, f)
model = make_model()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(2):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
