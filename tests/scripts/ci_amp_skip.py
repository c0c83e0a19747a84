"""fp16 autocast with a GradScaler whose initial scale is far too large: the
first steps' scaled gradients overflow and the scaler skips them, lowering
its scale, then training proceeds. The loss is finite throughout: healthy."""
import torch

torch.manual_seed(0)
x = torch.randn(256, 16)
y = (x[:, :4].sum(1) > 0).long()
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                            torch.nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
skipped = 0

for step in range(60):
    with torch.autocast("cpu", dtype=torch.float16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    skipped += scaler.get_scale() < scale
print(f"skipped {skipped} steps; final loss {loss.item():.4f}")
