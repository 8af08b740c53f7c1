"""OpenAI-compatible HTTP model server over a Hugging Face model directory.

The encoder runs on numpy (no PyTorch), so the container image stays small.
"""

__version__ = "0.1.0"
