"""Make the rules importable as `model_serving_policy`, the name `pulumi policy` uses.

`pulumi preview --policy-pack policy` runs policy/__main__.py with policy/ first on
sys.path; the tests put it there too, so both import the rules under one name (one module,
one shared run state).
"""

from __future__ import annotations

import sys
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))

import pytest  # noqa: E402
from model_serving_policy import state  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_run_state() -> None:
    """Each test is one run of the pack: what one test's resource analysis recorded must not decide another's."""
    state.reset()
