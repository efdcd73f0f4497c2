"""Training throughput (images/s) of ResNet-20 (CIFAR, option-A shortcuts, as masq's zoo) in
PyTorch eager on the CPU: forward in training mode, cross-entropy, backward, SGD step.

Usage: .masq/python trainer/scripts/torch_throughput.py [BATCH] [STEPS] [THREADS]
Compare with: cargo run --release -p masq-trainer --example throughput -- resnet20 BATCH STEPS THREADS
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (stride != 1 or cin != planes)
        self.q = planes // 4

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.q, self.q)) if self.pad else x
        return F.relu(y + s)


class ResNet20(nn.Module):
    def __init__(self, n=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for planes, stride in [(16, 1), (32, 2), (64, 2)]:
            for b in range(n):
                layers.append(Block(cin, planes, stride if b == 0 else 1))
                cin = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    if len(sys.argv) > 3:
        torch.set_num_threads(int(sys.argv[3]))
    torch.manual_seed(0)
    model = ResNet20().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    s = time.perf_counter() - t0
    print(f"pytorch eager resnet20 batch {batch} threads {torch.get_num_threads()}: "
          f"{steps * batch / s:.1f} images/s ({s / steps:.3f} s/step)")


if __name__ == "__main__":
    main()
