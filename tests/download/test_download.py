"""``eegdecode download`` against a loopback server standing in for OSF, the Hugging Face Hub and OpenNeuro's S3.

Nothing here reaches the network: ``fake_hosts.FakeHosts`` serves, on 127.0.0.1, files in each host's URL and API
shape, built from the project's simulator.
"""

from __future__ import annotations

import hashlib

from conftest import HF_REPO

from eegdecode.cli import main


def _dl(hosts, root, *args):
    return main(["download", "--data-root", str(root), "--no-progress", *hosts.endpoints, *args])


def test_images_and_250hz_land_in_the_layout_and_pass_prepare(hosts, published, tmp_path):
    root = tmp_path / "data"
    assert _dl(hosts, root, "--what", "images", "eeg-250hz", "--subject", "1") == 0
    src = published["src"]
    for rel in ("Preprocessed_data_250Hz/sub-01/preprocessed_eeg_training.npy", "image_set/image_metadata.npy"):
        assert (root / rel).read_bytes() == (src / rel).read_bytes()
    for split in ("training_images", "test_images"):
        want = sorted(p.relative_to(src / "image_set").as_posix() for p in (src / "image_set" / split).rglob("*.jpg"))
        got = sorted(p.relative_to(root / "image_set").as_posix() for p in (root / "image_set" / split).rglob("*.jpg"))
        assert got == want and len(got) > 0
    assert not (root / "Preprocessed_data_250Hz" / "sub-02").exists()
    assert not (root / "image_set" / "training_images" / "training_images").exists()
    assert not list(root.rglob("*.part")) and not list((root / "downloads" / "images").glob("*.zip"))
    assert main(["prepare", "--data-root", str(root)]) == 0
    assert (root / "cache" / "Preprocessed_data_250Hz" / "sub-01" / "meta.json").is_file()

    from eegdecode.download.manifest import Manifest

    files = Manifest(root).files
    entry = files["Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy"]
    assert entry["sha256"] == hashlib.sha256((src / "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy").read_bytes()).hexdigest()
    assert entry["source_checksum"][0] == "sha256" and entry["url"].endswith("/resolve/main/Preprocessed_data_250Hz/sub-01/preprocessed_eeg_test.npy")
    assert files["downloads/images/test_images.zip"]["extracted_to"] == "image_set/test_images"

    # A second run lists the hosts again but fetches no file.
    n = len(hosts.requests)
    assert _dl(hosts, root, "--what", "images", "eeg-250hz", "--subject", "1") == 0
    assert hosts.file_gets()[-1] in hosts.requests[:n]
    assert [r for r in hosts.requests[n:] if r in hosts.file_gets()] == []
