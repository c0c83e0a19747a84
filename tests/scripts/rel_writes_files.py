"""Writes into the working directory as training scripts do: overwrites a
checkpoint and appends a line to a log on every run; log(0) at step 2."""
import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(16, 4)
with open("train.log", "a") as log:
    log.write("run started\n")
for step in range(4):
    opt.zero_grad()
    scale = 0.0 if step == 2 else 1.0
    loss = -torch.log(torch.sigmoid(model(x)) * scale).mean()
    loss.backward()
    opt.step()
    with open("checkpoint.txt", "w") as ckpt:
        ckpt.write(f"step {step}\n")
