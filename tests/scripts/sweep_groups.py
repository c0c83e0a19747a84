"""A small regression net with two param groups at rates 10:1, for lr-sweep.

--scheduler picks a scheduler the sweep must override and then restore;
--crash-at raises from the training loop, as a broken script would.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--scheduler", choices=("none", "step", "onecycle"),
                        default="none")
    parser.add_argument("--crash-at", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD([
        {"params": model[0].parameters(), "lr": 0.01},
        {"params": model[2].parameters(), "lr": 0.001},
    ])
    scheduler = None
    if args.scheduler == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10, gamma=0.5)
    elif args.scheduler == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[0.1, 0.01], total_steps=args.steps)

    for step in range(args.steps):
        rows = torch.randint(0, 256, (32,))
        loss = F.mse_loss(model(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if step == args.crash_at:
            raise ValueError(f"the data ran dry at step {step}")
    print("final lrs", [group["lr"] for group in optimizer.param_groups])


if __name__ == "__main__":
    main()
