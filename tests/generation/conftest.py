"""One tiny random SDXL pipeline + IP-Adapter per test session, written to disk in the real folder layout."""

import pytest

from eegdecode.generation.sdxl import Generator, build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_sdxl"), seed=0)


@pytest.fixture(scope="session")
def tiny_generator(tiny_weights):
    return Generator(tiny_weights.sdxl, tiny_weights.ip_adapter, device="cpu", batch_size=4)
