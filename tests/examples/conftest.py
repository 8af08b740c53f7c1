"""Reuse of the components outside this program: the Python example (under mocks), the provider's
components (schema and construction, in process), and the wheel (built and installed into a throwaway venv).

The provider module is imported the way the plugin runs it: ``provider/`` on sys.path, module
``model_serving_provider``.
"""

from __future__ import annotations

import sys

import pytest

from tests.harness import ROOT

PROVIDER_DIR = ROOT / "provider"
if str(PROVIDER_DIR) not in sys.path:
    sys.path.insert(0, str(PROVIDER_DIR))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "packaging: builds the wheel and installs it into a throwaway venv (about 10-20 s; pip needs PyPI)"
    )


@pytest.fixture(autouse=True)
def _fresh_gpu_ledgers() -> None:
    """The provider keeps one GPU ledger per pool and deployment; each test is a deployment of its own."""
    import model_serving_provider

    model_serving_provider.reset_capacity()
