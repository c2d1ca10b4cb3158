import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # small models: threads cost more than they save, and results repeat

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"


@pytest.fixture
def real_data_dir() -> Path:
    """The full data sets, if this checkout has ../shared beside it (as in CI)."""
    d = Path(os.environ.get("GROUP_SCISSOR_DATA", SHARED_DATA))
    if not (d / "MNIST" / "raw").is_dir():
        pytest.skip(f"real data sets not found at {d}")
    return d
