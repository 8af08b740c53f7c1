"""Values unknown during preview: never pass silently, never block.

The engine wraps resource properties with ``pulumi_policy.proxy.unknown_checking_proxy``;
reading a value that is unknown during preview (say, an image reference that a
not-yet-built image will produce) raises ``UnknownValueError``.

Choice: a rule wraps each independent check in :meth:`Decider.deciding`. A check that
touches an unknown value is skipped and its path remembered; the rule goes on with its
other checks and reports their violations at the rule's own level. At the end,
:meth:`Decider.finish` raises :class:`UndecidedError` (an ``UnknownValueError``) naming
every undecided path. The engine turns that exception into an *advisory* diagnostic
("can't run policy '<rule>' ... during preview: cannot decide: <path> is unknown during
preview"). Reporting it through the rule's own ``report_violation`` instead would give it
the rule's level, so a mandatory rule would block every preview of a stack whose image is
built in the same update; an advisory that names the path is the honest answer. At
``pulumi up`` the values are known and the rule decides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError


def format_path(parts: Sequence[object]) -> str:
    """``['spec', 'containers', '0', 'resources', 'limits', 'nvidia.com/gpu']`` to
    ``spec.containers[0].resources.limits["nvidia.com/gpu"]``."""
    out = ""
    for part in parts:
        text = str(part)
        if text.isdigit():
            out += f"[{text}]"
        elif text.replace("_", "").replace("-", "").isalnum():
            out += f".{text}" if out else text
        else:
            out += f'["{text}"]'
    return out or "(root)"


class UndecidedError(UnknownValueError):
    """A rule could not decide because values are unknown during preview."""

    def __init__(self, paths: Sequence[str], why: str = ""):
        super().__init__(UNKNOWN_STRING_VALUE, [])
        self.paths = list(dict.fromkeys(paths))
        verb = "is" if len(self.paths) == 1 else "are"
        self.message = f"cannot decide: {', '.join(self.paths)} {verb} unknown during preview"
        if why:
            self.message += f" ({why})"

    def __str__(self) -> str:
        return self.message


class Decider:
    """Collects the paths a rule could not decide on; see the module docstring."""

    def __init__(self) -> None:
        self.undecided: list[str] = []

    @contextmanager
    def deciding(self, prefix: str = "") -> Iterator[None]:
        """Run a check; if it touches an unknown value, remember the path and go on."""
        try:
            yield
        except UndecidedError as e:
            self.undecided.extend(f"{prefix}{p}" for p in e.paths)
        except UnknownValueError as e:
            self.undecided.append(f"{prefix}{format_path(e.props)}")

    def add(self, path: str) -> None:
        self.undecided.append(path)

    def finish(self) -> None:
        """Raise :class:`UndecidedError` if any check could not decide."""
        if self.undecided:
            raise UndecidedError(self.undecided)
