"""``eegdecode download`` against a loopback server standing in for OSF, the Hugging Face Hub and OpenNeuro's S3.

Nothing here reaches the network: ``fake_hosts.FakeHosts`` serves, on 127.0.0.1, files in each host's URL and API
shape, built from the project's simulator.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import HF_REPO, _zip
from fake_hosts import wait_for

from eegdecode.cli import main
from eegdecode.download.manifest import Manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
META = "/osf/storage/qkgtf"  # image_metadata.npy
TEST_ZIP = "/osf/storage/znu7b"
TRAIN_ZIP = "/osf/storage/3v527"


def _dl(hosts, root, *args):
    return main(["download", "--data-root", str(root), "--no-progress", *hosts.endpoints, *args])


def test_images_and_250hz_land_in_the_layout_and_pass_prepare(hosts, published, tmp_path):
    root = tmp_path / "data"
    assert _dl(hosts, root, "--what", "images", "eeg-250hz", "--subject", "1") == 0
    src = published["src"]
    for rel in (
        "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_training.npy",
        "image_set/image_metadata.npy",
    ):
        assert (root / rel).read_bytes() == (src / rel).read_bytes()
    for split in ("training_images", "test_images"):
        want = sorted(
            p.relative_to(src / "image_set").as_posix() for p in (src / "image_set" / split).rglob("*.jpg")
        )
        got = sorted(
            p.relative_to(root / "image_set").as_posix() for p in (root / "image_set" / split).rglob("*.jpg")
        )
        assert got == want and len(got) > 0
    assert not (root / "Preprocessed_data_250Hz" / "sub-02").exists()
    assert not (root / "image_set" / "training_images" / "training_images").exists()
    assert not list(root.rglob("*.part")) and not list((root / "downloads" / "images").glob("*.zip"))
    assert main(["prepare", "--data-root", str(root)]) == 0
    assert (root / "cache" / "Preprocessed_data_250Hz" / "sub-01" / "meta.json").is_file()
    from eegdecode.data.image_set import ImageSet

    images = ImageSet(root / "image_set")
    images.read_metadata()  # metadata agrees with the unpacked folders
    assert (images.split("train").n_images, images.split("test").n_images) == (24, 6)

    from eegdecode.download.manifest import Manifest

    files = Manifest(root).files
    entry = files["Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy"]
    assert (
        entry["sha256"]
        == hashlib.sha256(
            (src / "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy").read_bytes()
        ).hexdigest()
    )
    assert entry["source_checksum"][0] == "sha256" and entry["url"].endswith(
        "/resolve/main/Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy"
    )
    assert files["downloads/images/test_images.zip"]["extracted_to"] == "image_set/test_images"

    # A second run lists the hosts again but fetches no file.
    n_files, n_all = len(hosts.file_gets()), len(hosts.requests)
    assert _dl(hosts, root, "--what", "images", "eeg-250hz", "--subject", "1") == 0
    assert len(hosts.file_gets()) == n_files and len(hosts.requests) > n_all


def _gets(hosts, path):
    return [r for r in hosts.requests if r[0] == "GET" and r[1] == path]


def test_connection_cut_mid_file_is_resumed_with_range(hosts, published, tmp_path, monkeypatch):
    monkeypatch.setattr("eegdecode.download.http.time.sleep", lambda s: None)
    size = len(published["osf"]["y63gw"][1][2])
    hosts.cut_once[TEST_ZIP] = size // 2
    root = tmp_path / "data"
    assert _dl(hosts, root, "--what", "images") == 0
    assert [r[2] for r in _gets(hosts, TEST_ZIP)] == [None, f"bytes={size // 2}-"]
    assert len(list((root / "image_set" / "test_images").rglob("*.jpg"))) == 6


def test_killed_download_resumes_from_the_part_file(hosts, published, tmp_path):
    """A real kill (SIGKILL of the process mid-file); the rerun asks only for the missing bytes."""
    root = tmp_path / "data"
    data = published["osf"]["y63gw"][0][2]
    cut = len(data) // 3
    hosts.hold[TRAIN_ZIP] = cut
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "eegdecode",
        "download",
        "--data-root",
        str(root),
        "--what",
        "images",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        [*cmd, *hosts.endpoints], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    part = root / "downloads" / "images" / "training_images.zip.part"
    try:
        assert wait_for(lambda: part.is_file() and part.stat().st_size >= cut, timeout=60), proc.poll()
    finally:
        proc.kill()
        proc.wait(10)
    hosts.hold.clear()
    hosts.release.set()
    assert part.stat().st_size == cut and not (root / "downloads" / "images" / "training_images.zip").exists()
    assert not (root / "image_set" / "training_images").exists()
    assert _dl(hosts, root, "--what", "images") == 0
    assert _gets(hosts, TRAIN_ZIP)[-1][2] == f"bytes={cut}-"
    assert len(list((root / "image_set" / "training_images").rglob("*.jpg"))) == 24
    assert (
        Manifest(root).files["downloads/images/training_images.zip"]["sha256"]
        == hashlib.sha256(data).hexdigest()
    )


def test_part_file_of_another_remote_version_is_not_resumed(hosts, tmp_path):
    from eegdecode.download.http import download_file

    dest = tmp_path / "x.npy"
    Path(str(dest) + ".part").write_bytes(b"old bytes")
    Path(str(dest) + ".part.json").write_text('{"url": "elsewhere", "size": 9, "checksum": null}')
    download_file(f"{hosts.url}{META}", dest, progress=False)
    assert _gets(hosts, META) == [("GET", META, None)]
    assert not Path(str(dest) + ".part").exists() and not Path(str(dest) + ".part.json").exists()


def test_server_that_ignores_range_restarts_from_zero(hosts, published, tmp_path, monkeypatch):
    monkeypatch.setattr("eegdecode.download.http.time.sleep", lambda s: None)
    size = len(published["osf"]["y63gw"][2][2])
    hosts.cut_once[META] = 100
    hosts.ignore_range.add(META)
    root = tmp_path / "data"
    assert _dl(hosts, root, "--what", "images") == 0
    assert [r[2] for r in _gets(hosts, META)] == [None, "bytes=100-"]
    assert (root / "image_set" / "image_metadata.npy").stat().st_size == size


def test_corrupted_download_is_fetched_again_then_refused(hosts, published, tmp_path, capsys):
    root = tmp_path / "data"
    hosts.corrupt[META] = 1
    assert _dl(hosts, root, "--what", "images") == 0
    assert len(_gets(hosts, META)) == 2
    assert (root / "image_set" / "image_metadata.npy").read_bytes() == published["osf"]["y63gw"][2][2]

    root2 = tmp_path / "data2"
    hosts.corrupt[META] = 5
    capsys.readouterr()
    assert _dl(hosts, root2, "--what", "images") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sha256: expected" in err and "nothing was kept" in err
    assert not (root2 / "image_set" / "image_metadata.npy").exists()
    assert not list(root2.rglob("*.part")) and not list(root2.rglob("*.part.json"))


def test_file_corrupted_on_disk_is_detected_and_fetched_again(hosts, published, tmp_path):
    root = tmp_path / "data"
    args = ("--what", "eeg-250hz", "--subject", "1")
    assert _dl(hosts, root, *args) == 0
    rel = "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy"
    good = published["src"].joinpath(rel).read_bytes()
    f = root / rel
    n = len(hosts.file_gets())

    f.write_bytes(b"\0" * len(good))  # same size, new mtime: re-hashed, found wrong, fetched again
    assert _dl(hosts, root, *args) == 0
    assert f.read_bytes() == good and len(hosts.file_gets()) > n

    # Same size and the recorded mtime: only --verify re-hashes it.
    st = f.stat()
    f.write_bytes(b"\1" * len(good))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    n = len(hosts.file_gets())
    assert _dl(hosts, root, *args) == 0
    assert len(hosts.file_gets()) == n and f.read_bytes() != good
    assert _dl(hosts, root, *args, "--verify") == 0
    assert f.read_bytes() == good and len(hosts.file_gets()) > n


def test_file_copied_in_by_hand_is_checked_not_fetched(hosts, published, tmp_path):
    root = tmp_path / "data"
    (root / "image_set").mkdir(parents=True)
    (root / "image_set" / "image_metadata.npy").write_bytes(published["osf"]["y63gw"][2][2])
    assert _dl(hosts, root, "--what", "images") == 0
    assert _gets(hosts, META) == []
    assert Manifest(root).files["image_set/image_metadata.npy"]["source_checksum"][0] == "sha256"


def test_file_copied_in_by_hand_that_differs_is_refused_not_replaced(hosts, tmp_path, capsys):
    root = tmp_path / "data"
    (root / "image_set").mkdir(parents=True)
    (root / "image_set" / "image_metadata.npy").write_bytes(b"my own metadata")
    assert _dl(hosts, root, "--what", "images") == 1
    err = capsys.readouterr().err
    assert "is not from a completed download" in err and "move it away" in err
    assert (root / "image_set" / "image_metadata.npy").read_bytes() == b"my own metadata"


def test_disk_space_is_checked_before_anything_is_fetched(hosts, tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        "eegdecode.download.fetch.shutil.disk_usage", lambda p: usage(10**6, 10**6 - 100, 100)
    )
    assert _dl(hosts, tmp_path / "data", "--what", "images", "eeg-250hz", "--subject", "1") == 1
    err = capsys.readouterr().err
    assert "not enough free disk space" in err and "found 100 bytes" in err
    assert hosts.file_gets() == []


def test_dry_run_lists_files_and_sizes_and_fetches_nothing(hosts, published, tmp_path, capsys):
    root = tmp_path / "data"
    assert _dl(hosts, root, "--what", "images", "eeg-250hz", "--subject", "2", "--dry-run") == 0
    out = capsys.readouterr().out
    size = len(published["osf"]["y63gw"][0][2])
    assert f"{size:,} B  image_set/training_images" in out
    assert "Preprocessed_data_250Hz/sub-02/preprocessed_eeg_training.npy" in out and "sub-01" not in out
    assert "5 file(s)" in out
    assert hosts.file_gets() == [] and not root.exists()


def test_100hz_and_raw_zips_unpack_into_subject_folders(hosts, published, tmp_path):
    root = tmp_path / "data"
    assert _dl(hosts, root, "--what", "eeg-100hz", "eeg-raw", "--subject", "1") == 0
    sub = root / "preprocessed_data" / "sub-01"
    assert sorted(p.name for p in sub.iterdir()) == [
        "preprocessed_eeg_test.npy",
        "preprocessed_eeg_training.npy",
    ]
    src = published["src"] / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_test.npy"
    assert (sub / "preprocessed_eeg_test.npy").read_bytes() == src.read_bytes()
    assert (root / "raw_data" / "sub-01" / "ses-01" / "raw_eeg_training.npy").stat().st_size == 3000
    assert not (root / "preprocessed_data" / "sub-02").exists() and not list(root.rglob("__MACOSX"))


def test_meg_derivative_and_raw_bids_from_the_s3_layout(hosts, published, tmp_path):
    root = tmp_path / "data"
    hosts.s3_multipart.add("ds004212/derivatives/preprocessed/preprocessed_P1-epo.fif")
    assert _dl(hosts, root, "--what", "meg", "meg-raw", "--subject", "1") == 0
    ds = root / "ds004212"
    got = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*") if p.is_file())
    assert got == [
        "dataset_description.json",
        "derivatives/preprocessed/preprocessed_P1-epo-1.fif",
        "derivatives/preprocessed/preprocessed_P1-epo.fif",
        "participants.tsv",
        "sourcedata/image_concept_index.csv",
        "sourcedata/image_paths.csv",
        "sub-BIGMEG1/ses-1/meg/sub-BIGMEG1_ses-1_task-main_run-1_events.tsv",
        "sub-BIGMEG1/ses-1/meg/sub-BIGMEG1_ses-1_task-main_run-1_meg.ds/data.meg4",
    ]
    for rel in got:
        assert (ds / rel).read_bytes() == published["s3"][f"ds004212/{rel}"]
    files = Manifest(root).files
    assert files["ds004212/derivatives/preprocessed/preprocessed_P1-epo-1.fif"]["source_checksum"][0] == "md5"
    multipart = files["ds004212/derivatives/preprocessed/preprocessed_P1-epo.fif"]
    assert multipart["source_checksum"] is None and len(multipart["sha256"]) == 64


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--what", "eeg-250hz", "--subject", "11"), 2, "Invalid --subject for eeg-250hz: [11]"),
        (("--what", "eeg-250hz", "--subject", "one"), 2, "--subject: Invalid subject 'one'"),
        (
            ("--what", "eeg-raw", "--subject", "2"),
            1,
            "osf crxs4: sub-02.zip not in the listing (it holds 1 files: sub-01.zip)",
        ),
        (("--what", "meg", "--subject", "3"), 1, "preprocessed_P3-epo.fif not in the listing"),
    ],
)
def test_bad_options_exit_2_and_missing_files_exit_1_in_one_line(
    hosts, tmp_path, capsys, args, code, message
):
    assert _dl(hosts, tmp_path / "data", *args) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("eegdecode download: error:")


def test_no_data_root_and_unreachable_host(hosts, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("eegdecode.download.http.time.sleep", lambda s: None)
    assert main(["download", "--what", "images"]) == 2
    assert "--data-root" in capsys.readouterr().err
    hosts.stop()
    for what in ("images", "eeg-250hz", "meg"):
        assert _dl(hosts, tmp_path / "data", "--what", what) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot reach the server" in err, err


def test_hf_offline_mode_is_a_one_line_error(hosts, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert _dl(hosts, tmp_path / "data", "--what", "eeg-250hz") == 1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert hosts.requests == []


def test_unknown_hf_repo_is_a_one_line_error(hosts, tmp_path, capsys):
    hosts.hf.pop(HF_REPO)
    assert _dl(hosts, tmp_path / "data", "--what", "eeg-250hz") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and HF_REPO in err


def test_existing_folder_that_is_not_ours_is_never_overwritten(hosts, tmp_path, capsys):
    root = tmp_path / "data"
    (root / "image_set" / "test_images").mkdir(parents=True)
    (root / "image_set" / "test_images" / "mine.jpg").write_bytes(b"user data")
    assert _dl(hosts, root, "--what", "images") == 1
    assert "move it away" in capsys.readouterr().err
    assert (
        hosts.file_gets() == []
        and (root / "image_set" / "test_images" / "mine.jpg").read_bytes() == b"user data"
    )


def test_unsafe_or_damaged_archives_are_refused(tmp_path):
    from eegdecode.download.fetch import extract_archive
    from eegdecode.download.http import DownloadError

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr("../escape.txt", b"bad")
    with pytest.raises(DownloadError, match="unsafe member path '../escape.txt'"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()

    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w") as zf:
        zf.writestr("a.bin", b"x" * 1000)
    raw = bytearray(damaged.read_bytes())
    raw[raw.index(b"x" * 10) + 5] = ord("y")  # stored member: one byte changed, CRC now wrong
    damaged.write_bytes(bytes(raw))
    with pytest.raises(DownloadError, match="damaged archive"):
        extract_archive(damaged, tmp_path / "out2")
    assert not (tmp_path / "out2").exists() and not list(tmp_path.glob(".out2.unpack-*"))


def test_weights_land_where_generate_and_features_read_them(hosts, published, tmp_path):
    root = tmp_path / "data"
    what = ("--what", "weights-clip", "weights-sdxl-turbo", "weights-ip-adapter")
    assert _dl(hosts, root, *what) == 0
    w = root / "weights"
    got = sorted(p.relative_to(w).as_posix() for p in w.rglob("*") if p.is_file())
    assert "clip/open_clip_pytorch_model.bin" in got and "clip/pytorch_model.bin" not in got
    assert (
        "ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors" in got
        and len([g for g in got if g.startswith("ip-")]) == 1
    )
    sdxl = [g[len("sdxl-turbo/") :] for g in got if g.startswith("sdxl-turbo/")]
    assert "model_index.json" in sdxl and "unet/diffusion_pytorch_model.fp16.safetensors" in sdxl
    assert (
        "unet/diffusion_pytorch_model.safetensors" not in sdxl
        and "sd_xl_turbo_1.0_fp16.safetensors" not in sdxl
    )
    repo = published["hf"]["h94/IP-Adapter"]
    assert (w / "ip-adapter" / "sdxl_models" / "ip-adapter_sdxl_vit-h.safetensors").read_bytes() == repo[
        "sdxl_models/ip-adapter_sdxl_vit-h.safetensors"
    ]

    from eegdecode.generation.sdxl import resolve_weights

    found = resolve_weights(sdxl_dir=w / "sdxl-turbo", ip_adapter_dir=w / "ip-adapter")
    assert found.sdxl == w / "sdxl-turbo" and found.ip_adapter == w / "ip-adapter"


def test_one_download_at_a_time_per_data_root(hosts, tmp_path, capsys):
    from eegdecode.download.fetch import _root_lock

    root = tmp_path / "data"
    with _root_lock(root):
        assert _dl(hosts, root, "--what", "images") == 1
    assert "another `eegdecode download` is writing here" in capsys.readouterr().err
    assert hosts.file_gets() == []
    assert _dl(hosts, root, "--what", "images") == 0


def test_endpoints_default_to_the_real_hosts_and_are_overridable(monkeypatch, capsys):
    from eegdecode.download.assets import Endpoints

    for env in ("EEGDECODE_OSF_API", "EEGDECODE_HF_ENDPOINT", "EEGDECODE_OPENNEURO_S3", "HF_ENDPOINT"):
        monkeypatch.delenv(env, raising=False)
    assert Endpoints.resolve() == Endpoints(
        "https://api.osf.io/v2", "https://huggingface.co", "https://s3.amazonaws.com/openneuro.org"
    )
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    monkeypatch.setenv("EEGDECODE_OSF_API", "http://127.0.0.1:1/osf/v2/")
    ep = Endpoints.resolve(openneuro="http://127.0.0.1:2/s3")
    assert (ep.osf, ep.hf, ep.openneuro) == (
        "http://127.0.0.1:1/osf/v2",
        "https://hf-mirror.example",
        "http://127.0.0.1:2/s3",
    )
    assert (
        main(["download", "--data-root", "x", "--what", "images", "--endpoint-osf", "ftp://x", "--dry-run"])
        == 2
    )
    assert "Invalid endpoint for osf: 'ftp://x'" in capsys.readouterr().err


def test_250hz_release_published_as_one_zip_per_subject_is_unpacked(hosts, published, tmp_path):

    sub01 = published["src"] / "Preprocessed_data_250Hz" / "sub-01"
    hosts.hf[HF_REPO] = {"Preprocessed_data_250Hz/sub-01.zip": _zip(sub01, "sub-01"), "README.md": b"#\n"}
    root = tmp_path / "data"
    assert _dl(hosts, root, "--what", "eeg-250hz", "--subject", "1") == 0
    for f in sub01.iterdir():
        assert (root / "Preprocessed_data_250Hz" / "sub-01" / f.name).read_bytes() == f.read_bytes()
    assert (
        Manifest(root).files["downloads/eeg-250hz/sub-01.zip"]["extracted_to"]
        == "Preprocessed_data_250Hz/sub-01"
    )


def test_hint_names_the_download_line():
    from eegdecode.download.assets import hint
    from eegdecode.download.http import DownloadOptionError

    assert (
        hint("weights-sdxl-turbo", "data") == "eegdecode download --what weights-sdxl-turbo --data-root data"
    )
    with pytest.raises(DownloadOptionError, match="Invalid asset 'sdxl'"):
        hint("sdxl")
