"""A tiny attention model on padded sequences: padding is masked with -inf,
in an additive mask passed to the model and with masked_fill inside it.
Trains fine; nandoctor must call it healthy."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyAttention(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.embed = nn.Linear(4, d)
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.head = nn.Linear(d, 1)

    def forward(self, x, additive_mask, padding):
        h = self.embed(x)
        scores = self.query(h) @ self.key(h).transpose(1, 2) / 4.0
        scores = scores + additive_mask[:, None, :]
        scores = scores.masked_fill(padding[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return self.head((weights @ h).mean(1)).squeeze(1)


def main():
    torch.manual_seed(0)
    x = torch.randn(64, 10, 4)
    lengths = torch.randint(3, 11, (64,))
    padding = torch.arange(10)[None, :] >= lengths[:, None]
    additive_mask = torch.zeros(64, 10).masked_fill(padding, float("-inf"))
    y = x[..., 0].sum(1)
    model = TinyAttention()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(40):
        i = (step * 16) % 64
        pred = model(x[i:i + 16], additive_mask[i:i + 16], padding[i:i + 16])
        loss = F.mse_loss(pred, y[i:i + 16])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
