"""ModelImage: the model server's container image, built with pulumi-docker or taken prebuilt."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.config import ImageConfig
from components.kube import child_options


@dataclass
class ModelImageArgs:
    image: ImageConfig
    # Registry password for pushes; a pulumi secret (model-serving:registryPassword).
    registry_password: pulumi.Input[str] | None = None


class ModelImage(pulumi.ComponentResource):
    """Output ``image_ref``: the pushed repo digest, else the reference given or built."""

    image_ref: pulumi.Output[str]

    def __init__(self, name: str, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:ModelImage", name, None, opts)
        build = args.image.build
        if build is None:
            assert args.image.ref is not None  # guaranteed by config validation
            self.image_ref = pulumi.Output.from_input(args.image.ref)
        else:
            registry = None
            if build.registry_server:
                registry = docker.RegistryArgs(
                    server=build.registry_server,
                    username=build.registry_username,
                    password=pulumi.Output.secret(args.registry_password) if args.registry_password else None,
                )
            image = docker.Image(
                name,
                image_name=build.image_name,
                build=docker.DockerBuildArgs(
                    context=build.context,
                    dockerfile=build.dockerfile,
                    args=dict(build.args),
                    platform=build.platform,
                    cache_from=docker.CacheFromArgs(images=list(build.cache_from)) if build.cache_from else None,
                ),
                registry=registry,
                skip_push=not build.push,
                opts=child_options(self, opts),
            )
            # Pushed: the digest pins exactly what was built. Local only: the name is all there is.
            self.image_ref = image.repo_digest if build.push else image.image_name
        self.register_outputs({"image_ref": self.image_ref})
