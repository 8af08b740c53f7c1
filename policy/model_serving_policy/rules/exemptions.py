"""``exempted-resources``: every exemption in use, reported on every preview."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Severity, StackValidationPolicy

from .. import state
from ..framework import StackContext, stack_policy


def _report_exemptions(ctx: StackContext) -> None:
    for use in state.drain_exemptions():
        ctx.report_violation(f"{use.resource} is exempted from '{use.policy}': {use.reason}", use.urn)


POLICIES: list[StackValidationPolicy] = [
    stack_policy(
        name="exempted-resources",
        # Last in the pack: it reports what the other policies recorded earlier in the run.
        description="Reports each exemption a rule applied in this run, so that exemptions stay visible.",
        check=_report_exemptions,
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=Severity.LOW,
        exemptible=False,
    ),
]
