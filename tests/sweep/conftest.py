"""Grid files on the tiny simulated set: MUSE_EEG, 17 channels, 0.3 s, one epoch (about a second per run)."""

import copy

import pytest
import yaml

FAST_BASE = {
    "model": "MUSE_EEG",
    "epochs": 1,
    "batch_size": 64,
    "device": "cpu",
    "eval_draws": 5,
    "checkpoint_every": 1,  # a `last` checkpoint every epoch, for the interruption tests
    "data": {
        "channels": "posterior17",
        "time_window": [0, 0.3],
        "train_unit": "average",
        "val_fraction": 0.1,
    },
}


@pytest.fixture
def write_grid(tmp_path, tiny_root):
    """``write_grid(grid=..., **top)`` -> path of a YAML grid file with the fast base and ``out`` under tmp_path."""

    def write(grid=None, name="grid.yaml", base=None, **top):
        content = {
            "out": str(tmp_path / "runs"),
            "data_root": str(tiny_root),
            "base": copy.deepcopy(FAST_BASE),
        }
        content["base"].update(base or {})
        content["grid"] = grid or {}
        content.update(top)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(content))
        return path

    return write
