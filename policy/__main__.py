"""Entry point for `pulumi preview --policy-pack policy`: builds the PolicyPack, nothing else.

The engine runs this file with policy/ as the first entry of sys.path, so the rules
import as the top-level package `model_serving_policy`.
"""

from model_serving_policy import build_pack

build_pack()
