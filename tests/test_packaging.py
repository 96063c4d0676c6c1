"""The set-up files agree with each other and the CLI answers."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    return sorted(line.strip() for line in lines if re.match(r"^[A-Za-z0-9_.\-\[\]]+==", line.strip()))


def test_requirements_and_environment_agree():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env_lines = [
        line.strip()[2:].strip()
        for line in (ROOT / "environment.yml").read_text().splitlines()
        if line.strip().startswith("- ")
    ]
    env = _pins(env_lines)
    assert req == env
    assert "torch==2.11.0" in req and "torchvision==0.26.0" in req and "torchaudio==2.11.0" in req


def test_readme_starts_with_demo_and_test_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    assert "make demo" in blocks[0]
    assert "make test" in blocks[1]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "eegdecode", "--help"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    for cmd in ("simulate", "prepare", "features", "demo"):
        assert cmd in out
