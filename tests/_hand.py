"""The hand-made 2x6 micro-batch shared by the gating and loss tests (expected masks are in those tests)."""

import torch


T_, F_ = True, False
# Two sequences of 5 valid tokens; the last position of each row is padding.
MASK = torch.tensor([[T_, T_, T_, T_, T_, F_],
                     [T_, T_, T_, T_, T_, F_]])
ENTROPY = torch.tensor([[0.10, 0.90, 0.30, 0.50, 0.20, 9.9],
                        [0.40, 0.60, 0.05, 0.80, 0.70, 9.9]])
LOGP = torch.tensor([[-1.0, -2.0, -3.0, -4.0, -5.0, -100.0],
                     [-1.0, -1.0, -1.0, -1.0, -1.0, -100.0]])
ADV = torch.tensor([1.0, -1.0])
