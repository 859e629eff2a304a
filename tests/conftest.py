"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tidyctx.testing import LocalServer


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """A started :class:`tidyctx.testing.LocalServer` (a local Messages API), stopped after."""
    with LocalServer() as server:
        yield server


@pytest.fixture
def anthropic_client(local_server: LocalServer) -> Iterator[anthropic.Anthropic]:
    """A real SDK client talking to ``local_server``: no retries, responses validated strictly."""
    with anthropic.Anthropic(
        base_url=local_server.base_url,
        api_key="test",
        max_retries=0,
        _strict_response_validation=True,
    ) as client:
        yield client
