"""Policy pack ``model-serving-policies``: guardrails for model-serving stacks.

Import name: ``model_serving_policy`` (``policy/`` on ``sys.path``, as ``pulumi policy``
and ``tests/policy/conftest.py`` arrange). Public API:

* :func:`all_policies` - every policy, in pack order;
* :func:`build_pack` - what ``policy/__main__.py`` calls;
* :func:`evaluate` - run every policy over plain resource records, as the engine would.
"""

from .evaluate import ResourceRecord, Violation, evaluate
from .pack import PACK_NAME, all_policies, build_pack

__all__ = ["PACK_NAME", "ResourceRecord", "Violation", "all_policies", "build_pack", "evaluate"]
