"""Fixtures of the segmentation-loss tests."""
import pytest


@pytest.fixture(params=["binary", "multiclass", "multilabel"])
def mode(request) -> str:
    return request.param
