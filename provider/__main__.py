"""Entry point of the model-serving component provider: the CLI runs ``python provider/`` (see PulumiPlugin.yaml)
and talks to it over gRPC. Other languages use it with ``pulumi package add <path to this directory>``."""

from model_serving_provider import COMPONENTS, PACKAGE, VERSION
from pulumi.provider.experimental import component_provider_host

if __name__ == "__main__":
    component_provider_host(COMPONENTS, name=PACKAGE, version=VERSION)
