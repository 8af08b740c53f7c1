"""The raw program plus as many bare ComponentResources as the component program registers.

A bare component has no children, no inputs and no outputs (``register_outputs({})``): what it
costs is what registering one ComponentResource costs the SDK, however the real ones are written.
``bare / raw`` is therefore the floor of ``component / raw`` for this many components per model:
the rest of the overhead is how the components are written.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pulumi

from components.program import load_stack_config


class Bare(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("bench:index:Bare", name, None, None)
        self.register_outputs({})


stack = load_stack_config(pulumi.Config("model-serving"))
if stack.needs_gpu_pool:
    Bare(stack.gpu_pool.name)  # GpuNodePool
for model in stack.models:
    Bare(model.name)  # ModelService
runpy.run_path(str(Path(__file__).resolve().parent / "raw_program.py"), run_name="__main__")
