"""Fixtures of the segmentation-loss tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """The loss tests use tiny tensors: intra-op threads only add spin-waiting on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
