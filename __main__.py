"""model-serving: one ModelService per model of the stack's config, and the GpuNodePool when the stack needs it."""

import pulumi
import pulumi_kubernetes as k8s

from components import (
    GpuNodePool,
    GpuNodePoolArgs,
    InferenceGateway,
    InferenceGatewayArgs,
    ModelService,
    ModelServiceArgs,
    specs,
)
from components.program import kubeconfig_path, load_stack_config, stack_secrets

config = pulumi.Config("model-serving")
stack = load_stack_config(config)

provider = k8s.Provider(
    "kubernetes",
    render_yaml_to_directory=stack.render_directory,
    kubeconfig=kubeconfig_path(stack),
    context=stack.kube_context,
    enable_server_side_apply=True,
)
# Only a stack with a GPU model or a Karpenter NodePool owns the pool's cluster-wide objects (gpuPool's doc).
if stack.needs_gpu_pool:
    pool = GpuNodePool(
        stack.gpu_pool.name,
        GpuNodePoolArgs(pool=stack.gpu_pool, monitoring=stack.monitoring),
        pulumi.ResourceOptions(provider=provider),
    )
    scheduling = pool.scheduling
else:
    scheduling = specs.gpu_scheduling(stack.gpu_pool)
# The Gateway the routed models' HTTPRoutes attach to, when the stack creates it (a route may name it first).
if stack.gateway.gateway_class_name is not None:
    gateway = InferenceGateway(
        stack.gateway.name,
        InferenceGatewayArgs(gateway=stack.gateway, models=stack.routed_models),
        pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )
    pulumi.export("gateway", gateway.gateway_name)
hub_token, registry_password = stack_secrets(config, stack)
for model in stack.models:
    service = ModelService(
        model.name,
        ModelServiceArgs(
            model=model,
            scheduling=scheduling,
            hub_token=hub_token,
            registry_password=registry_password,
            monitoring=stack.monitoring,
            gateway=stack.gateway,
        ),
        pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )
    pulumi.export(f"{model.name}_endpoint", service.endpoint)
    pulumi.export(f"{model.name}_image_ref", service.image_ref)
    pulumi.export(f"{model.name}_namespace", service.namespace)
pulumi.export("gpu_budget", stack.gpu_pool.gpu_budget)
