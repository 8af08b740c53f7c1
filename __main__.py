"""model-serving: one GpuNodePool and one ModelService per model of the stack's config."""

import pulumi
import pulumi_kubernetes as k8s

from components import GpuNodePool, GpuNodePoolArgs, ModelService, ModelServiceArgs
from components.program import kubeconfig_path, load_stack_config

config = pulumi.Config("model-serving")
stack = load_stack_config(config)

provider = k8s.Provider(
    "kubernetes",
    render_yaml_to_directory=stack.render_directory,
    kubeconfig=kubeconfig_path(stack),
    context=stack.kube_context,
    enable_server_side_apply=True,
)
pool = GpuNodePool(stack.gpu_pool.name, GpuNodePoolArgs(pool=stack.gpu_pool), pulumi.ResourceOptions(provider=provider))
for model in stack.models:
    service = ModelService(
        model.name,
        ModelServiceArgs(
            model=model,
            scheduling=pool.scheduling,
            hub_token=config.get_secret("hubToken"),
            registry_password=config.get_secret("registryPassword"),
        ),
        pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )
    pulumi.export(f"{model.name}_endpoint", service.endpoint)
    pulumi.export(f"{model.name}_image_ref", service.image_ref)
    pulumi.export(f"{model.name}_namespace", service.namespace)
pulumi.export("gpu_budget", pool.gpu_budget)
