"""Checkpoint files: digests verified on load, a killed save leaves the previous checkpoint loadable."""

from __future__ import annotations

import pytest
import torch

from eegdecode import faults
from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import read_json, write_json
from eegdecode.training.checkpoint import checkpoint_files, load_checkpoint, save_checkpoint, tidy_checkpoint


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


def _opt(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    return opt


def test_round_trip_and_versioned_names(tmp_path):
    a = _model(0)
    save_checkpoint(tmp_path, "last", a, {"epoch": 3}, _opt(a))
    files = checkpoint_files(tmp_path, "last")
    assert files["weights"].name.startswith("last-e0003-") and files["state"].name.endswith(".state.pt")
    b = _model(1)
    opt = torch.optim.AdamW(b.parameters(), lr=1e-3)
    info = load_checkpoint(tmp_path, "last", b, opt)
    assert info["epoch"] == 3 and torch.equal(a.weight, b.weight) and opt.state_dict()["state"]


def test_weights_that_disagree_with_the_json_are_refused_naming_both_files(tmp_path):
    save_checkpoint(tmp_path, "best", _model(0), {"epoch": 1})
    files = checkpoint_files(tmp_path, "best")
    # the crash window of the old layout: new weights in place, the JSON of the previous epoch
    other = tmp_path / "other"
    save_checkpoint(other, "best", _model(1), {"epoch": 1})
    files["weights"].write_bytes(checkpoint_files(other, "best")["weights"].read_bytes())
    with pytest.raises(
        DataFormatError, match=rf"{files['weights'].name}.*SHA-256 disagrees with .*best\.json"
    ):
        load_checkpoint(tmp_path, "best", _model(2))


def test_a_state_file_that_disagrees_is_refused(tmp_path):
    m = _model(0)
    save_checkpoint(tmp_path, "last", m, {"epoch": 0}, _opt(m))
    state = checkpoint_files(tmp_path, "last")["state"]
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="state.pt.*SHA-256 disagrees"):
        load_checkpoint(tmp_path, "last", _model(0), torch.optim.AdamW(_model(0).parameters()))


def test_a_missing_file_named_by_the_json_is_an_error(tmp_path):
    save_checkpoint(tmp_path, "best", _model(0), {"epoch": 0})
    checkpoint_files(tmp_path, "best")["weights"].unlink()
    with pytest.raises(MissingFileError, match="best.json"):
        load_checkpoint(tmp_path, "best", _model(0))


@pytest.mark.parametrize("boundary", ["last.weights", "last.state"])
def test_a_save_killed_before_its_json_leaves_the_previous_checkpoint(tmp_path, boundary):
    first = _model(0)
    save_checkpoint(tmp_path, "last", first, {"epoch": 0}, _opt(first))

    def kill(name):
        if name == boundary:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError), faults.inject(kill):
        save_checkpoint(tmp_path, "last", _model(5), {"epoch": 1}, _opt(_model(5)))
    restored = _model(9)
    assert load_checkpoint(tmp_path, "last", restored)["epoch"] == 0
    assert torch.equal(restored.weight, first.weight)
    # the orphan files of the killed save are removed by the next tidy (done on resume) or save
    tidy_checkpoint(tmp_path, "last")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in checkpoint_files(tmp_path, "last").values())


def test_checkpoints_of_the_earlier_layout_still_load(tmp_path):
    from safetensors.torch import save_file

    m = _model(0)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "best.safetensors"))
    write_json(tmp_path / "best.json", {"epoch": 2, "weights": "best.safetensors"})
    restored = _model(3)
    assert load_checkpoint(tmp_path, "best", restored)["epoch"] == 2 and torch.equal(
        restored.weight, m.weight
    )
    assert read_json(tmp_path / "best.json")["weights"] == "best.safetensors"
