"""A search team's stack reusing model-serving-components: an embeddings model (CPU) and a reranker on vLLM (GPU).

It shows the library's API outside the model-serving program: typed config from a plain dict (validated,
errors name the key), one shared GpuNodePool, one ModelService per model, and the outputs a caller uses.
"""

import pulumi
import pulumi_kubernetes as k8s

from components import ConfigError, GpuNodePool, GpuNodePoolArgs, ModelService, ModelServiceArgs, parse_stack_config

config = pulumi.Config()
IMAGE = config.get("image") or "registry.example.com/model-serving/server:0.1.0"
VLLM_IMAGE = config.get("vllmImage") or "registry.example.com/mirror/vllm-openai:v0.11.0"


def model(name: str, model_id: str, max_replicas: int, **settings: object) -> dict[str, object]:
    return {
        "name": name,
        "modelId": model_id,
        "image": {"ref": IMAGE},
        "resources": {"cpu": "2", "memory": "4Gi", "ephemeralStorage": "4Gi"},
        "modelCache": {"size": "2Gi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": max_replicas},
        "service": {"type": "ClusterIP"},
        **settings,
    }


try:
    stack = parse_stack_config(
        {
            "namespace": "search",
            "gpuPool": {"gpuMemory": "24Gi", "gpuBudget": config.get_int("gpuBudget") or 4},
            "models": [
                model("embeddings", "sentence-transformers/all-MiniLM-L6-v2", 2),
                model(
                    "reranker",
                    "BAAI/bge-reranker-v2-m3",
                    2,
                    engine="vllm",
                    image={"ref": VLLM_IMAGE},
                    resources={"cpu": "4", "memory": "16Gi", "ephemeralStorage": "12Gi", "gpus": 1},
                    modelCache={"size": "8Gi"},
                ),
            ],
        }
    )
except ConfigError as error:
    raise pulumi.RunError(f"invalid model-serving config: {error}") from None

render_directory = config.get("renderDirectory", "rendered") or None
provider = k8s.Provider("kubernetes", render_yaml_to_directory=render_directory, enable_server_side_apply=True)
pool = GpuNodePool("gpu", GpuNodePoolArgs(pool=stack.gpu_pool), pulumi.ResourceOptions(provider=provider))
endpoints = {}
for m in stack.models:
    service = ModelService(
        m.name,
        ModelServiceArgs(model=m, scheduling=pool.scheduling),
        pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )
    endpoints[m.name] = service.endpoint
pulumi.export("endpoints", endpoints)
pulumi.export("gpu_budget", pool.gpu_budget)
