"""Pure builders: validated config in, plain Kubernetes objects (wire-form dicts) out, by concern.

Each module keeps one concern's builders and its plan (the objects a component registers, in order, and what each
waits for): :mod:`~components.specs.gpu_pool`, :mod:`~components.specs.workloads` (with the pod in
:mod:`~components.specs.pods`), :mod:`~components.specs.admission` (quota, limits, priority),
:mod:`~components.specs.network`, :mod:`~components.specs.scaling`,
:mod:`~components.specs.monitoring` (with every PromQL query), :mod:`~components.specs.routing` (with the endpoint
picker in :mod:`~components.specs.picker`). Every Kubernetes field the program emits is written in one of them,
one builder per kind. Nothing here talks to Pulumi or holds state, except that an image reference or a secret may
be a ``pulumi.Output`` placed inside a dict, which the Kubernetes provider resolves.

The built-in kinds' wire forms are TypedDicts (:mod:`components.specs.wire`, generated from the Kubernetes OpenAPI
schema by ``scripts/wire_types.py``): mypy checks every nested field name and value type the builders write.

The builders are also importable from this package directly (``specs.deployment(...)``).
"""

from components.specs.admission import *  # noqa: F403
from components.specs.base import *  # noqa: F403
from components.specs.gpu_pool import *  # noqa: F403
from components.specs.monitoring import *  # noqa: F403
from components.specs.network import *  # noqa: F403
from components.specs.picker import *  # noqa: F403
from components.specs.pods import *  # noqa: F403
from components.specs.routing import *  # noqa: F403
from components.specs.scaling import *  # noqa: F403
from components.specs.workloads import *  # noqa: F403
