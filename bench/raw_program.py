"""The raw program: the objects ``__main__.py`` declares, registered directly, without any ComponentResource.

It is the baseline of the component layer's overhead. It reads the same stack config through the same loader,
registers the same plans (each concern's ``plan`` in :mod:`components.specs`: every object from its builders, in
order, with what it waits for and its custom timeouts) with the same :func:`components.kube.register_steps`, and
exports the same stack outputs. What it leaves out is exactly the component layer: the GpuNodePool, ModelService
and InferenceGateway resources, their parent links, the aliases ModelService gives its objects (to the URNs they
had under the components it used to nest) and registered outputs.

Dependencies are the ones the component program's objects are registered with (``python -m bench.mock_run --check``
compares both): every namespaced object waits for its Namespace, the Deployment also for its ServiceAccount,
Secret and claim, and the HPA for the Deployment's objects.
Models must use prebuilt images (``image.ref``, or ``imageRefOverride``): there is no docker.Image here.

Runs as a Pulumi program (``runpy`` under the mock harness, or as ``__main__.py`` of a throwaway project that the
preview benchmark makes).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import specs
from components.kube import register, register_steps, service_endpoint
from components.program import load_stack_config

config = pulumi.Config("model-serving")
stack = load_stack_config(config)

provider = k8s.Provider(
    "kubernetes",
    render_yaml_to_directory=stack.render_directory,
    context=stack.kube_context,
    enable_server_side_apply=True,
)


def on_provider(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(provider=provider, depends_on=list(depends_on))


# GpuNodePool's objects, when the stack needs them (as in __main__.py); the scheduling either way.
pool = stack.gpu_pool
scheduling = specs.gpu_scheduling(pool)
if stack.needs_gpu_pool:
    register_steps(specs.gpu_pool.plan(pool, stack.monitoring), lambda after: on_provider(*after))

# InferenceGateway's objects, when the stack creates its Gateway.
if stack.gateway.gateway_class_name is not None:
    register_steps(specs.routing.gateway_plan(stack.gateway, stack.routed_models), lambda after: on_provider(*after))
    pulumi.export("gateway", f"{stack.gateway.namespace}/{stack.gateway.name}")

hub_token = config.get_secret("hubToken")
for model in stack.models:
    if model.image.ref is None:
        raise pulumi.RunError(f"the raw program needs a prebuilt image for model {model.name!r} (imageRefOverride)")
    image_ref = pulumi.Output.from_input(model.image.ref)
    ns = register(specs.namespace(model.namespace), on_provider())
    # ModelDeployment's objects: each waits for the namespace too (ModelService's depends_on for its children).
    secret = pulumi.Output.secret(hub_token) if hub_token is not None else None
    canary_image = model.canary.image if model.canary is not None else None
    admitted = register_steps(specs.admission.plan(model, scheduling), lambda after, ns=ns: on_provider(ns, *after))
    deployment_objects = register_steps(
        specs.workloads.plan(model, image_ref, scheduling, secret, canary_image),
        lambda after, ns=ns, admitted=admitted: on_provider(ns, *admitted.values(), *after),
    )
    # LoadBalancedService's objects.
    in_ns = lambda after, ns=ns: on_provider(ns, *after)  # noqa: E731
    service_objects = register_steps(specs.network.plan(model, stack.monitoring, stack.gateway), in_ns)
    svc = service_objects["service"]
    # ModelRouting's objects: after the model's Deployments and Services.
    if model.routing.mode != "service":
        waits = [ns, *deployment_objects.values(), *service_objects.values()]
        register_steps(
            specs.routing.plan(model, stack.gateway, stack.monitoring),
            lambda after, waits=waits: on_provider(*waits, *after),
        )
    # Autoscaler's object: waiting for the ModelDeployment component means waiting for its objects.
    waits = [ns, *deployment_objects.values()]
    register_steps(specs.scaling.plan(model, stack.monitoring), lambda after, waits=waits: on_provider(*waits, *after))
    # ModelMonitoring's objects.
    register_steps(specs.monitoring.plan(model, stack.monitoring), in_ns)
    pulumi.export(f"{model.name}_endpoint", service_endpoint(svc, model.service.port))
    pulumi.export(f"{model.name}_image_ref", image_ref)
    pulumi.export(f"{model.name}_namespace", pulumi.Output.from_input(model.namespace))
pulumi.export("gpu_budget", pool.gpu_budget)
