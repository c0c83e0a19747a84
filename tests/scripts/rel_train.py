"""A tiny healthy training loop; --steps and --lr from the command line,
other arguments ignored.

With REL_REPORT set, it writes what it saw (argv, cwd, sys.path[0]) there as
JSON, so tests can check what nandoctor handed the script.
"""
import argparse
import json
import os
import sys

import torch

if os.environ.get("REL_REPORT"):
    seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0],
            "name": __name__}
    with open(os.environ["REL_REPORT"], "w") as f:
        json.dump(seen, f)

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--lr", type=float, default=0.1)
options, _ = parser.parse_known_args()  # tests pass it arguments of all kinds

torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=options.lr)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(options.steps):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
