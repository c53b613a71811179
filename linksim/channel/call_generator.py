"""A Sionna block whose random draws come from the caller's ``torch.Generator``.

Sionna's blocks draw with ``generator=self.torch_rng``, a property returning Sionna's global
per-device generator (``sionna.phy.config.torch_rng(device)``). A generator cannot travel
through ``Block.__call__`` (Sionna converts every argument to a tensor), so
:class:`DrawsFromCallGenerator` overrides the property instead: inside
``with self.drawing_from(generator):`` it returns that generator, so every draw of the call
is a deterministic function of the caller's generator state; with ``None`` (or outside the
block) it is Sionna's own, exactly as in the parent block. The per-call attribute means an
instance must not be called from two threads at once. Under ``torch.compile`` Sionna ignores
any generator and uses the global torch RNG.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch

__all__ = ["DrawsFromCallGenerator"]


class DrawsFromCallGenerator:
    """Mixin placed before a Sionna block class: ``class GeneratorAWGN(DrawsFromCallGenerator, AWGN)``."""

    _call_generator: Optional[torch.Generator] = None

    @property
    def torch_rng(self) -> torch.Generator:
        """The generator of the running call, else Sionna's config RNG."""
        if self._call_generator is not None:
            return self._call_generator
        return super().torch_rng

    @contextmanager
    def drawing_from(self, generator: Optional[torch.Generator]):
        """Draw from ``generator`` until the block exits (``None``: Sionna's config RNG)."""
        self._call_generator = generator
        try:
            yield
        finally:
            self._call_generator = None
