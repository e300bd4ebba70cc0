import os
import tempfile

import pytest
import torch


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One toy-base cache per test session (commands and subprocesses inherit it): identical bases are built once, and
# nothing is written to the user's ~/.cache.
if not os.environ.get("SENT_CACHE"):
    os.environ["SENT_CACHE"] = tempfile.mkdtemp(prefix="sent-test-cache-")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
