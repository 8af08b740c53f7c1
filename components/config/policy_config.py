"""The ``policy`` block: how strictly the policy pack checks the stack, where no other key of the stack implies it.

Not read by the program's objects: :mod:`.policy_settings` writes it into the stack's generated pack settings
(``policy/config/<stack>.json``), beside what the rest of the config implies (GPU budget, the GPU pool's exemptions,
load budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from components.config.declare import REQUIRED, BlockList, key
from components.config.kinds import Choice, Flag, Text

MODEL_REVISION_LEVELS = ("advisory", "mandatory")


@dataclass(frozen=True, kw_only=True)
class Exemption:
    """A resource one rule of the policy pack lets through, and why."""

    type_name: ClassVar[str] = "PolicyExemption"
    rule: str = key(Text("rule name"), REQUIRED, "the pack's rule that skips it, e.g. `pod-security` (docs/policy.md)")
    namespace: str = key(Text("pattern"), REQUIRED, "its namespace (shell-style patterns such as `*` allowed)")
    name: str = key(Text("pattern"), REQUIRED, "its name (shell-style patterns allowed)")
    kind: str | None = key(Text(), None, "its kind, e.g. `DaemonSet`", unset="any kind")
    reason: str = key(Text(), REQUIRED, "why; the pack's `exempted-resources` reports it on every run")


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """How strictly the policy pack checks this stack (its generated `policy/config/<stack>.json`)."""

    type_name: ClassVar[str] = "Policy"
    require_digest: bool = key(
        Flag(),
        True,
        "the pack's `container-images` rule requires every image pinned by digest; false where the stack runs "
        "tagged images (built or imported locally)",
    )
    model_revision: str = key(
        Choice(MODEL_REVISION_LEVELS),
        "advisory",
        "level of the pack's `model-revision` rule: `mandatory` refuses a model fetched from the hub without its "
        "pinned commit",
    )
    exemptions: tuple[Exemption, ...] = key(
        BlockList(Exemption, "exemptions", may_be_empty=True),
        (),
        "deliberate exceptions, each with its reason (the GPU pool's own node agents are exempted without one here)",
    )
