"""ModelDeployment: one model's pods, their identity, storage and disruption budget."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import specs
from components.config import ModelConfig
from components.kube import child_options, register


@dataclass
class ModelDeploymentArgs:
    model: ModelConfig
    image_ref: pulumi.Input[str]
    scheduling: specs.GpuScheduling
    # The model-hub token, a pulumi secret; required when model.hub_token is set.
    hub_token: pulumi.Input[str] | None = None


class ModelDeployment(pulumi.ComponentResource):
    """Deployment, ServiceAccount, optional cache PVC and hub-token Secret, and a PDB when replicas can exceed one."""

    deployment_name: pulumi.Output[str]
    # The Secret holding the hub token (its data is a secret output), when the model uses one.
    hub_token_secret: pulumi.CustomResource | None = None

    def __init__(self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:ModelDeployment", name, None, opts)
        model = args.model
        child = child_options(self, opts)
        needed = [register(specs.service_account(model), child)]
        if model.hub_token:
            if args.hub_token is None:
                raise ValueError(f"model {model.name!r} mounts a hub token but none was given")
            self.hub_token_secret = register(specs.hub_token_secret(model, pulumi.Output.secret(args.hub_token)), child)
            needed.append(self.hub_token_secret)
        claim = specs.model_cache_claim(model)
        if claim is not None:
            # Unbound claims wait for the first consumer: do not block on them.
            needed.append(
                register(
                    {**claim, "metadata": {**claim["metadata"], "annotations": {"pulumi.com/skipAwait": "true"}}},
                    child,
                )
            )
        timeout = f"{max(30, specs.progress_deadline_seconds(model) // 60 + 10)}m"
        self.deployment = register(
            specs.deployment(model, args.image_ref, args.scheduling),
            child_options(
                self, opts, depends_on=needed, custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)
            ),
        )
        budget = specs.disruption_budget(model)
        if budget is not None:
            register(budget, child)
        self.deployment_name = pulumi.Output.from_input(model.name)
        self.register_outputs({"deployment_name": self.deployment_name})
