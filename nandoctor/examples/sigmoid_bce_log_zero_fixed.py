"""sigmoid_bce_log_zero, fixed: the loss takes logits.

binary_cross_entropy_with_logits computes log(sigmoid(z)) as -softplus(-z),
which stays finite however large the logits grow, so the same model, data
and learning rate train to the end.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset


class TumourClassifier(nn.Module):
    def __init__(self, n_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # logits: the loss applies the sigmoid


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--log-every", type=int, default=50)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    data = load_breast_cancer()
    x = torch.tensor(StandardScaler().fit_transform(data.data),
                     dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.float32)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size,
                        shuffle=True)

    model = TumourClassifier(x.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    step = 0
    for epoch in range(args.epochs):
        for xb, yb in loader:
            loss = F.binary_cross_entropy_with_logits(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % args.log_every == 0:
                print(f"epoch {epoch} step {step} loss {loss.item():.6g}")
            step += 1
    print(f"final loss {loss.item():.6g}")


if __name__ == "__main__":
    main()
