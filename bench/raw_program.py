"""The raw program: the objects ``__main__.py`` declares, registered directly, without any ComponentResource.

It is the baseline of the component layer's overhead. It reads the same stack config through the same loader,
builds every object with the same :mod:`components.specs` builders and registers it with the same
:func:`components.kube.register`, with the same options (provider, dependencies, custom timeouts) and the same
stack outputs. What it leaves out is exactly the component layer: the GpuNodePool, ModelService, ModelImage,
ModelDeployment, LoadBalancedService and Autoscaler resources, their parent links and registered outputs.

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
from components.kube import register
from components.program import load_stack_config
from components.service import _endpoint

config = pulumi.Config("model-serving")
stack = load_stack_config(config)

provider = k8s.Provider(
    "kubernetes",
    render_yaml_to_directory=stack.render_directory,
    context=stack.kube_context,
    enable_server_side_apply=True,
)
on_provider = pulumi.ResourceOptions(provider=provider)

# GpuNodePool's objects.
pool = stack.gpu_pool
scheduling = specs.gpu_scheduling(pool)
register(specs.runtime_class(pool), on_provider)
if pool.device_plugin.enabled:
    plugin_ns = register(specs.namespace(pool.device_plugin.namespace, pod_security="privileged"), on_provider)
    plugin_config = register(
        specs.device_plugin_config(pool), pulumi.ResourceOptions(provider=provider, depends_on=[plugin_ns])
    )
    register(
        specs.device_plugin_daemon_set(pool),
        pulumi.ResourceOptions(provider=provider, depends_on=[plugin_ns, plugin_config]),
    )
node_pool = specs.karpenter_node_pool(pool)
if node_pool is not None:
    register(node_pool, on_provider)

hub_token = config.get_secret("hubToken")
for model in stack.models:
    if model.image.ref is None:
        raise pulumi.RunError(f"the raw program needs a prebuilt image for model {model.name!r} (imageRefOverride)")
    image_ref = pulumi.Output.from_input(model.image.ref)
    ns = register(specs.namespace(model.namespace), on_provider)
    in_ns = pulumi.ResourceOptions(provider=provider, depends_on=[ns])
    # ModelDeployment's objects.
    needed = [register(specs.service_account(model), in_ns)]
    if model.hub_token:
        if hub_token is None:
            raise ValueError(f"model {model.name!r} mounts a hub token but none was given")
        needed.append(register(specs.hub_token_secret(model, pulumi.Output.secret(hub_token)), in_ns))
    claim = specs.model_cache_claim(model)
    if claim is not None:
        annotated = {**claim, "metadata": {**claim["metadata"], "annotations": {"pulumi.com/skipAwait": "true"}}}
        needed.append(register(annotated, in_ns))
    timeout = f"{max(30, specs.progress_deadline_seconds(model) // 60 + 10)}m"
    deployment_objects = [*needed]
    deployment_objects.append(
        register(
            specs.deployment(model, image_ref, scheduling),
            pulumi.ResourceOptions(
                provider=provider,
                depends_on=[ns, *needed],
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
            ),
        )
    )
    budget = specs.disruption_budget(model)
    if budget is not None:
        deployment_objects.append(register(budget, in_ns))
    # LoadBalancedService's objects.
    svc = register(specs.service(model), in_ns)
    register(specs.network_policy(model), in_ns)
    # Autoscaler's object: waiting for the ModelDeployment component means waiting for its objects.
    hpa = specs.autoscaler(model)
    if hpa is not None:
        register(hpa, pulumi.ResourceOptions(provider=provider, depends_on=[ns, *deployment_objects]))
    port = model.service.port
    endpoint = pulumi.Output.all(svc.status, svc.spec).apply(  # type: ignore[attr-defined]
        lambda parts, port=port: _endpoint(parts[0], port, (parts[1] or {}).get("cluster_ip"))
    )
    pulumi.export(f"{model.name}_endpoint", endpoint)
    pulumi.export(f"{model.name}_image_ref", image_ref)
    pulumi.export(f"{model.name}_namespace", pulumi.Output.from_input(model.namespace))
pulumi.export("gpu_budget", pool.gpu_budget)
