"""The docs site's rule reference (docs/policy.md) is generated from the pack's rules and kept current."""

from __future__ import annotations

from pathlib import Path

from model_serving_policy import docs

POLICY_MD = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def test_docs_rule_reference_is_up_to_date() -> None:
    current = POLICY_MD.read_text()
    assert docs.BEGIN in current and docs.END in current
    assert docs.render(current) == current, "run: cd policy && ../.venv/bin/python -m model_serving_policy.docs"


def test_every_rule_has_a_section() -> None:
    from model_serving_policy.pack import all_policies

    current = POLICY_MD.read_text()
    for policy in all_policies():
        assert f"\n#### {policy.name}\n" in current, policy.name
