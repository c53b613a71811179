"""Linear degradation operators ``A`` with exact Moore–Penrose pseudo-inverses ``A⁺``.

DDNM (SING-Zero) splits an image into a range-space part ``A⁺A x``, fixed by the
measurement ``y = A x``, and a null-space part ``(I − A⁺A) x``, left to the diffusion
prior. It needs ``A`` and ``A⁺`` as fast batched functions, and for its noisy variant
(DDNM+) the singular values of ``A``. Every operator here is a *scaled co-isometry*:

    A Aᵀ = s² I          (one non-zero singular value s, of multiplicity rank A)

so that ``A⁺ = Aᵀ / s²``, ``A A⁺ = I`` on the measurement space and ``A⁺A`` is the
orthogonal projector onto the row space of ``A``. The class of scaled co-isometries is
closed under composition: for ``A = A₂A₁``, ``A Aᵀ = A₂ (s₁² I) A₂ᵀ = s₁² s₂² I`` and
``A⁺ = A₁⁺ A₂⁺`` (the pseudo-inverse of a product is not the reversed product in
general; it is here), with singular value ``s₁ s₂``.

| operator        | A (on [B, C, H, W])                         | A⁺                              | s      |
| --------------- | ------------------------------------------- | ------------------------------- | ------ |
| ``Identity``    | x                                           | y                               | 1      |
| ``AvgPool(k)``  | mean over each k×k block → [B, C, H/k, W/k] | block replication → [B, C, H, W] | 1/k    |
| ``Grayscale``   | mean of the C channels → [B, 1, H, W]       | copy to the C channels          | 1/√C   |

Average pooling: one output pixel is ``(1/k²) Σ`` over its k×k block, so each row of A
has k² entries 1/k² and disjoint support: ``A Aᵀ = (1/k²) I``, s = 1/k, and
``A⁺ = k² Aᵀ`` puts ``k² · y/k² = y`` in every pixel of the block (block replication).
Grayscale is the *channel mean* ``(1/3)[1 1 1]`` (not the luma weights, whose
pseudo-inverse is not a plain copy): ``A Aᵀ = 1/3``, s = 1/√3, ``A⁺ = 3 · (1/3)[1 1 1]ᵀ
= [1 1 1]ᵀ`` copies the gray value to the three channels.

Operators are built from names by :func:`make_operator`: ``"identity"``, ``"gray"``,
``"avgpool2"``, ``"avgpool4"``, ``"avgpool8"`` and ``+``-joined chains applied left to
right, e.g. ``"gray+avgpool4"`` = ``Compose(Grayscale(), AvgPool(4))``.

Example
-------
>>> import torch
>>> A = make_operator("gray+avgpool4")
>>> x = torch.rand(2, 3, 16, 16)
>>> A(x).shape, A.A_pinv(A(x)).shape, round(A.singular_value, 4)
(torch.Size([2, 1, 4, 4]), torch.Size([2, 3, 16, 16]), 0.1443)
>>> bool(torch.allclose(A(A.A_pinv(A(x))), A(x), atol=1e-6))
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from linksim.errors import ConfigError

__all__ = [
    "OPERATOR_NAMES",
    "POOL_FACTORS",
    "AvgPool",
    "Compose",
    "Grayscale",
    "Identity",
    "LinearOperator",
    "make_operator",
]

POOL_FACTORS = (2, 4, 8)
OPERATOR_NAMES = ("identity", "gray", *(f"avgpool{k}" for k in POOL_FACTORS))


class LinearOperator:
    """A linear map on image batches with an exact pseudo-inverse (a scaled co-isometry).

    Subclasses implement :meth:`A`, :meth:`A_pinv`, :meth:`out_shape` and set
    :attr:`singular_value` (the common value s of every non-zero singular value:
    ``A Aᵀ = s² I``). ``op(x)`` is ``op.A(x)``.
    """

    #: the one non-zero singular value s of A (A Aᵀ = s² I)
    singular_value: float = 1.0
    #: the name :func:`make_operator` builds this operator from
    name: str = ""

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """The measurement ``A x``: float [B, C, H, W] → float ``out_shape(C, H, W)`` per image."""
        raise NotImplementedError

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """The pseudo-inverse ``A⁺ y``: measurement-shaped float [B, …] → float [B, C, H, W]."""
        raise NotImplementedError

    def out_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """The per-image measurement shape for a per-image input shape (C, H, W).

        :raises ConfigError: field ``image_size`` — the input does not fit the operator.
        """
        raise NotImplementedError

    def project_range(self, x: torch.Tensor) -> torch.Tensor:
        """``A⁺A x``: the orthogonal projection onto the row space of A (float [B, C, H, W])."""
        return self.A_pinv(self.A(x))

    def project_null(self, x: torch.Tensor) -> torch.Tensor:
        """``(I − A⁺A) x``: the orthogonal projection onto the null space of A."""
        return x - self.project_range(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(LinearOperator):
    """``A = I`` (pure denoising): ``A⁺ = I``, s = 1."""

    name = "identity"
    singular_value = 1.0

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def out_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = _chw(shape)
        return (c, h, w)


class AvgPool(LinearOperator):
    """k×k average pooling with stride k: [B, C, H, W] → [B, C, H/k, W/k], s = 1/k.

    ``A⁺`` is block replication (every pixel of a block gets the block's value):
    ``A⁺ = k² Aᵀ`` since ``A Aᵀ = I/k²``. H and W must be multiples of k.

    :param factor: the block size k, one of 2, 4, 8.
    """

    def __init__(self, factor: int):
        if isinstance(factor, bool) or not isinstance(factor, int) or factor not in POOL_FACTORS:
            raise ConfigError("operator", f"avgpool{factor}", f"a pooling factor in {list(POOL_FACTORS)}")
        self.factor = factor
        self.name = f"avgpool{factor}"
        self.singular_value = 1.0 / factor

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.out_shape(x.shape[-3:])
        return F.avg_pool2d(x, self.factor)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        k = self.factor
        b, c, h, w = y.shape
        return y[:, :, :, None, :, None].expand(b, c, h, k, w, k).reshape(b, c, h * k, w * k)

    def out_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = _chw(shape)
        if h % self.factor or w % self.factor:
            raise ConfigError("image_size", f"{h}x{w}",
                              f"a height and width divisible by the pooling factor {self.factor} of {self.name!r} "
                              f"(crop the images to a multiple of {self.factor})")
        return (c, h // self.factor, w // self.factor)

    def __repr__(self) -> str:
        return f"AvgPool({self.factor})"


class Grayscale(LinearOperator):
    """The channel mean ``(1/C) Σ_c x_c``: [B, C, H, W] → [B, 1, H, W], s = 1/√C.

    ``A = (1/C)[1 … 1]`` per pixel, ``A Aᵀ = 1/C``, so ``A⁺ = C Aᵀ = [1 … 1]ᵀ``: the gray
    value copied to the C channels (C = 3 for RGB). The channel mean rather than the luma
    weights keeps ``A⁺`` this simple copy.

    :param channels: C, the number of input channels (3).
    """

    name = "gray"

    def __init__(self, channels: int = 3):
        self.channels = int(channels)
        self.singular_value = 1.0 / math.sqrt(self.channels)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.out_shape(x.shape[-3:])
        return x.mean(dim=1, keepdim=True)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y.expand(-1, self.channels, -1, -1)

    def out_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = _chw(shape)
        if c != self.channels:
            raise ConfigError("image_size", f"{c} channels", f"{self.channels} channels for {self.name!r}")
        return (1, h, w)


class Compose(LinearOperator):
    """``A = A_n ∘ … ∘ A_1`` (``ops`` applied left to right), ``A⁺ = A_1⁺ ∘ … ∘ A_n⁺``.

    Exact for scaled co-isometries (module docstring); s = Π s_i.

    :param ops: the operators, first applied first.
    """

    def __init__(self, *ops: LinearOperator):
        if not ops:
            raise ConfigError("operator", "", f"at least one of {list(OPERATOR_NAMES)}")
        self.ops = tuple(ops)
        self.name = "+".join(op.name for op in self.ops)
        self.singular_value = math.prod(op.singular_value for op in self.ops)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op.A(x)
        return x

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.ops):
            y = op.A_pinv(y)
        return y

    def out_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        for op in self.ops:
            shape = op.out_shape(shape)
        return tuple(shape)

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.ops))})"


def make_operator(spec: str | LinearOperator, image_shape: Sequence[int] | None = None) -> LinearOperator:
    """An operator from its name: ``identity``, ``gray``, ``avgpool{2,4,8}``, or ``+``-joined chains.

    :param spec: the name (case and spaces ignored), e.g. ``"gray+avgpool4"``, or an operator.
    :param image_shape: optionally the per-image (C, H, W) or (H, W) it will see, checked now.
    :raises ConfigError: field ``operator`` for an unknown name, field ``image_size`` for an
        image size the operator cannot take (not divisible by the pooling factor).
    """
    if isinstance(spec, LinearOperator):
        op = spec
    else:
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError("operator", spec, f"a name among {list(OPERATOR_NAMES)} or a '+'-joined chain of them")
        ops = []
        for part in spec.lower().replace(" ", "").split("+"):
            if part == "identity":
                ops.append(Identity())
            elif part in ("gray", "grey", "grayscale"):
                ops.append(Grayscale())
            elif part.startswith("avgpool") and part[len("avgpool"):].isdigit() and int(part[7:]) in POOL_FACTORS:
                ops.append(AvgPool(int(part[7:])))
            else:
                raise ConfigError("operator", spec,
                                  f"a name among {list(OPERATOR_NAMES)} or a '+'-joined chain of them "
                                  f"(unknown part {part!r})")
        op = ops[0] if len(ops) == 1 else Compose(*ops)
    if image_shape is not None:
        shape = tuple(int(v) for v in image_shape)
        op.out_shape(shape if len(shape) == 3 else (3, *shape))
    return op


def _chw(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ConfigError("image_size", tuple(shape), "a per-image shape (C, H, W)")
    return int(shape[0]), int(shape[1]), int(shape[2])
