"""ModelDeployment: one model's pods, their identity, storage and disruption budget."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pulumi

from components import plans, specs
from components.capacity import GpuBudgetError
from components.config import ModelConfig
from components.kube import child_options, register_steps


def reserve_gpus(model: ModelConfig, scheduling: specs.GpuScheduling) -> specs.GpuScheduling:
    """Reserve the model's peak GPUs from the pool behind ``scheduling`` (when it came from a GpuNodePool).

    Returns the scheduling without the pool's ledger, for children that must not reserve a second time.
    Stops the program, before anything of the model is registered, when the pool's budget is exceeded.
    """
    if scheduling.capacity is None:
        return scheduling
    try:
        scheduling.capacity.reserve(model)
    except GpuBudgetError as error:
        raise pulumi.RunError(str(error)) from None
    return dataclasses.replace(scheduling, capacity=None)


@dataclass
class ModelDeploymentArgs:
    model: ModelConfig
    image_ref: pulumi.Input[str]
    scheduling: specs.GpuScheduling
    # The model-hub token, a pulumi secret; required when model.hub_token is set.
    hub_token: pulumi.Input[str] | None = None
    # The canary's image when it runs one of its own (canary.image), else image_ref.
    canary_image_ref: pulumi.Input[str] | None = None


class ModelDeployment(pulumi.ComponentResource):
    """Deployment, ServiceAccount, optional cache PVC and hub-token Secret, and a PDB when replicas can exceed one;
    with a canary, its Deployment (and PDB) too, sharing the account, secret and cache."""

    deployment_name: pulumi.Output[str]
    # The Secret holding the hub token (its data is a secret output), when the model uses one.
    hub_token_secret: pulumi.CustomResource | None = None

    def __init__(self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        reserve_gpus(args.model, args.scheduling)
        super().__init__("model-serving:index:ModelDeployment", name, None, opts)
        model = args.model
        hub_token = pulumi.Output.secret(args.hub_token) if args.hub_token is not None else None
        objects = register_steps(
            plans.model_deployment(model, args.image_ref, args.scheduling, hub_token, args.canary_image_ref),
            lambda after: child_options(self, opts, depends_on=after),
        )
        self.deployment = objects["deployment"]
        self.hub_token_secret = objects.get("hub-token")
        self.deployment_name = pulumi.Output.from_input(model.name)
        self.register_outputs({"deployment_name": self.deployment_name})
