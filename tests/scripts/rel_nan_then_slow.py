"""log(0) at step 1, then 0.2 s a step: slow enough to interrupt the probes."""
import time

import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(16, 4)
for step in range(1000):
    opt.zero_grad()
    scale = 0.0 if step == 1 else 1.0
    loss = -torch.log(torch.sigmoid(model(x)) * scale).mean()
    loss.backward()
    opt.step()
    if step > 1:
        time.sleep(0.2)
