"""Receiver-side restoration (application layer): images and an SNR in, images out.

Nothing here imports ``linksim.channel``, ``linksim.digital`` or ``linksim.jscc``
(docs/ARCHITECTURE.md §3): a restorer never sees symbols. Modules:

- :mod:`~linksim.restore.operators` — linear degradations A with exact A⁺;
- :mod:`~linksim.restore.core` — the sampling loop (:class:`RestorationCore`);
- :mod:`~linksim.restore.ddnm` — SING-Zero / DDNM(+) (:class:`DDNMRestorer`);
- :mod:`~linksim.restore.inn` — the conditional INN of SING-INN / CommIN (:class:`~linksim.restore.inn.ConditionalINN`);
- :mod:`~linksim.restore.sing_inn` — SING-INN / CommIN guidance (:class:`SINGINNRestorer`);
- :mod:`~linksim.restore.priors` — diffusers UNet priors loaded offline (:func:`load_prior`);
- :mod:`~linksim.restore.specs` — the restorer entries' schema and checks (:func:`validate_spec`);
- :mod:`~linksim.restore.registry` — restorers by type for scenarios (:func:`make_restorer`).

Training (``linksim train prior|inn|diffjscc-base|diffjscc-control``) lives in :mod:`linksim.train`.

diffusers itself is imported only when a prior or a scheduler is built.
"""

from linksim.restore.core import Correction, RestorationCore, StepInfo
from linksim.restore.ddnm import DDNMHook, DDNMRestorer, sigma_y_from_snr
from linksim.restore.operators import AvgPool, Compose, Grayscale, Identity, LinearOperator, make_operator
from linksim.restore.priors import Prior, PriorFiles, check_prior_fits, inspect_prior, load_prior
from linksim.restore.registry import make_restorer
from linksim.restore.specs import validate_spec
from linksim.restore.sing_inn import SINGINNRestorer

__all__ = ["AvgPool", "Compose", "Correction", "DDNMHook", "DDNMRestorer", "Grayscale", "Identity", "LinearOperator",
           "Prior", "PriorFiles", "RestorationCore", "SINGINNRestorer", "StepInfo", "check_prior_fits", "inspect_prior", "load_prior",
           "make_operator", "make_restorer", "sigma_y_from_snr", "validate_spec"]
