"""Belief-propagation decoding of :class:`~linksim.digital.ldpc.code.LDPCCode` codes.

:class:`LDPCDecoder` wraps one backend for one code:

- ``"numba"`` (default for every code with a parity-check matrix, i.e. the 802.11n
  family): :class:`~linksim.digital.ldpc.numba_decoder.NumbaBPDecoder`, compiled CPU
  kernels: row-layered schedule (or flooding), offset min-sum (default, offset 0.5),
  normalized min-sum or exact sum-product, early termination per frame on a
  satisfied syndrome, SIMD over 16 frames per thread and multi-threaded over the
  batch. ``check_update`` one of ``offset-minsum`` (default), ``normalized-minsum``,
  ``minsum``, ``boxplus-phi`` / ``boxplus`` (sum-product); options ``schedule``,
  ``normalization``, ``offset``, ``early_stop``, ``threads``. About 230x Sionna's
  CPU throughput on n=1944 R=2/3 (``benchmarks/ldpc_decoders.py``). 5G NR codes (``H`` is None: rate
  matching lives in Sionna) stay Sionna-only, and are Sionna by default.
- ``"sionna"``: :class:`sionna.phy.fec.ldpc.LDPCBPDecoder` on the code's ``H``
  (flooding schedule, fixed number of iterations, no early stopping, internal LLR
  clipping at +/-20), or :class:`sionna.phy.fec.ldpc.LDPC5GDecoder` for 5G NR codes.
  ``check_update`` selects Sionna's check-node rule: ``"boxplus-phi"`` (sum-product,
  default), ``"boxplus"`` (sum-product, tanh form), ``"minsum"``, ``"offset-minsum"``.
- ``"pyldpc"``: pyldpc's log-domain sum-product kernel (``pyldpc.decoder._logbp_numba``,
  driven by the loop of :func:`pyldpc.decode`, which itself rejects most 802.11n codes):
  stops once every word of the batch satisfies the parity checks, at most ``iterations``.
  An independent reference for tests; slow (dense [n-k, n, B] float64 message arrays).
  Wi-Fi codes only.

LLR convention (Sionna's): ``llr = ln P(b=1|y) / P(b=0|y)``, positive means bit 1.
For BPSK ``s = 2b - 1`` over real AWGN with noise variance ``sigma2``: ``llr = 2 y / sigma2``.

Example
-------
>>> import torch
>>> from linksim.digital.ldpc import get_code, LDPCDecoder
>>> code = get_code("wifi-648-1/2")
>>> dec = LDPCDecoder(code, iterations=20)
>>> u = torch.zeros(2, code.k)
>>> llr = 10.0 * (2.0 * code.encode(u) - 1.0)      # noiseless, strong
>>> u_hat, ok = dec.decode(llr)
>>> bool((u_hat == u).all()), ok.tolist()
(True, [True, True])
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from linksim.errors import ConfigError
from linksim.digital.ldpc.code import LDPCCode

BACKENDS = ("numba", "sionna", "pyldpc")
CHECK_UPDATES = ("boxplus-phi", "boxplus", "minsum", "offset-minsum")   # sionna's (pyldpc: sum-product only)
NUMBA_OPTIONS = ("schedule", "normalization", "offset", "early_stop", "threads")


def default_backend(code: LDPCCode) -> str:
    """``"numba"`` for codes with a parity-check matrix (802.11n), ``"sionna"`` otherwise (5G NR)."""
    return "numba" if code.H is not None else "sionna"


def validate_decoder_options(backend: str, iterations=20, check_update: str | None = None,
                             field: str = "decoder", **numba_options) -> None:
    """Check decoder options without building a decoder (used by the scenario schema).

    :raises ConfigError: naming ``<field>.<option>`` for the first bad option.
    """
    from linksim.digital.ldpc.numba_decoder import NUMBA_CHECK_UPDATES, NumbaBPDecoder

    if backend not in BACKENDS:
        raise ConfigError(f"{field}.backend", backend, f"one of {', '.join(BACKENDS)}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"{field}.iterations", iterations, "an integer >= 1")
    allowed = NUMBA_CHECK_UPDATES if backend == "numba" else CHECK_UPDATES
    if check_update is not None and check_update not in allowed:
        raise ConfigError(f"{field}.check_update", check_update, f"one of {', '.join(allowed)} for backend {backend}")
    unknown = sorted(set(numba_options) - set(NUMBA_OPTIONS))
    if unknown:
        raise ConfigError(f"{field}", unknown[0], f"options among backend, iterations, check_update, {', '.join(NUMBA_OPTIONS)}")
    if backend != "numba":
        given = sorted(k for k, v in numba_options.items() if v is not None)
        if given:
            raise ConfigError(f"{field}.{given[0]}", numba_options[given[0]], "no value unless backend is numba")
        return
    try:   # the numba decoder validates its own options on a tiny matrix
        NumbaBPDecoder(np.array([[1, 1, 0], [0, 1, 1]], np.uint8), iterations=iterations,
                       check_update=check_update or "offset-minsum",
                       **{k: v for k, v in numba_options.items() if v is not None})
    except ConfigError as e:
        raise ConfigError(f"{field}.{e.field}", e.value, e.allowed) from None


def _syndrome_ok(H: sp.csr_matrix, c_hat: torch.Tensor) -> torch.Tensor:
    """[B] bool: ``H c_hat^T = 0 mod 2`` for hard decisions ``c_hat`` [B, n] in {0, 1}."""
    c = c_hat.detach().to("cpu").numpy().astype(np.int32)
    s = (H.astype(np.int32) @ c.T) % 2                    # [n-k, B]
    return torch.from_numpy(~s.any(axis=0))


def _nr_decoder_class():
    """LDPC5GDecoder that also keeps the full (pruned) mother-code hard decision.

    A mixin placed between LDPC5GDecoder and LDPCBPDecoder in the MRO records the
    output of the generic BP call, so the parity checks of the mother code can be
    verified on the decoder's own hard decision.
    """
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPCBPDecoder

    class _Capture(LDPCBPDecoder):
        def call(self, llr_ch, /, **kwargs):  # noqa: D401
            out = super().call(llr_ch, **kwargs)
            self._last_full = out
            return out

    class _NRDecoder(LDPC5GDecoder, _Capture):
        pass

    return _NRDecoder


class LDPCDecoder:
    """Belief-propagation decoder for one :class:`LDPCCode`.

    :param code: The code (from :func:`~linksim.digital.ldpc.get_code`).
    :param backend: ``"numba"``, ``"sionna"`` or ``"pyldpc"`` (the last one Wi-Fi codes only);
        `None` (default): :func:`default_backend` (numba where the code has ``H``).
    :param iterations: Number of BP iterations (sionna: exactly this many; numba and
        pyldpc: at most, stopping on a satisfied syndrome).
    :param check_update: Check-node rule. numba: ``offset-minsum`` (default),
        ``normalized-minsum``, ``minsum``, ``boxplus-phi``, ``boxplus``; sionna: ``boxplus-phi``
        (default), ``boxplus``, ``minsum``, ``offset-minsum``; pyldpc: sum-product only.
    :param device: Torch device of the Sionna decoder (default ``"cpu"``).
    :param schedule, normalization, offset, early_stop, threads: numba options, see
        :class:`~linksim.digital.ldpc.numba_decoder.NumbaBPDecoder` (`None`: its defaults).

    After each :meth:`decode`, ``last_iterations`` holds the iterations per frame
    ([B] int32 numpy, numba backend; `None` for the others).

    :raises ConfigError: Unknown backend / check update, non-positive iterations, or a
        backend that does not support the code family.
    """

    def __init__(self, code: LDPCCode, backend: str | None = None, iterations: int = 20,
                 check_update: str | None = None, device: str = "cpu", schedule: str | None = None,
                 normalization: float | None = None, offset: float | None = None,
                 early_stop: bool | None = None, threads: int | None = None):
        backend = default_backend(code) if backend is None else backend
        options = dict(schedule=schedule, normalization=normalization, offset=offset,
                       early_stop=early_stop, threads=threads)
        try:
            validate_decoder_options(backend, iterations, check_update, **options)
        except ConfigError as e:   # report the bare option name at this level
            raise ConfigError(e.field.removeprefix("decoder."), e.value, e.allowed) from None
        if check_update is None:
            check_update = "offset-minsum" if backend == "numba" else "boxplus-phi"
        self.code, self.backend, self.iterations, self.check_update = code, backend, iterations, check_update
        self.device = device
        self.last_iterations = None
        if backend == "numba":
            from linksim.digital.ldpc.numba_decoder import NumbaBPDecoder

            if code.H is None:
                raise ConfigError("backend", backend, f"'sionna' for code {code.name} (numba needs the code's H)")
            given = {k: v for k, v in options.items() if v is not None}
            self._numba = NumbaBPDecoder(code.H, iterations=iterations, check_update=check_update, **given)
        elif backend == "pyldpc":
            if code.H is None:
                raise ConfigError("backend", backend, f"'sionna' for code {code.name} (pyldpc needs H)")
            self._H_dense = code.H.toarray().astype(np.int64)
            self._graph = None
        elif code.family == "nr":
            cls = _nr_decoder_class()
            self._dec = cls(code._extra["encoder"], cn_update=check_update, num_iter=iterations,
                            hard_out=True, return_infobits=True, device=device)
            self._H_check = sp.csr_matrix(self._dec._pcm).astype(np.uint8)
        else:
            from sionna.phy.fec.ldpc import LDPCBPDecoder

            self._dec = LDPCBPDecoder(code.H, cn_update=check_update, num_iter=iterations,
                                      hard_out=True, device=device)

    def __repr__(self) -> str:
        return (f"LDPCDecoder(code={self.code.name!r}, backend={self.backend!r}, "
                f"iterations={self.iterations}, check_update={self.check_update!r})")

    @property
    def options(self) -> dict:
        """The numba decoder's resolved options (empty for the other backends)."""
        d = getattr(self, "_numba", None)
        if d is None:
            return {}
        return dict(schedule=d.schedule, normalization=d.normalization, offset=d.offset,
                    early_stop=d.early_stop, threads=d.threads)

    def decode(self, llr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode a batch of channel LLRs.

        :param llr: [B, n] `torch.float32`, ``ln P(b=1|y)/P(b=0|y)`` (positive -> bit 1).
        :output info_hat: [B, k] `torch.float32` in {0, 1}, on ``llr``'s device.
        :output parity_ok: [B] `torch.bool`: the decoder's hard decision satisfies every
            parity check (Wi-Fi: ``H c_hat^T = 0``; NR: the checks of the mother code).
        :raises ConfigError: (field ``llr``) wrong type, dtype or shape.
        """
        n = self.code.n
        if not isinstance(llr, torch.Tensor) or llr.dtype != torch.float32 or llr.ndim != 2 \
                or llr.shape[1] != n or llr.shape[0] < 1:
            got = f"{tuple(llr.shape)} {llr.dtype}" if isinstance(llr, torch.Tensor) else type(llr).__name__
            raise ConfigError("llr", got, f"a torch.float32 tensor of shape [B, {n}] with B >= 1")
        out_device = llr.device
        k = self.code.k
        with torch.no_grad():
            if self.backend == "numba":
                bits, ok_np, self.last_iterations = self._numba.decode(llr.detach().to("cpu").numpy())
                info_hat = torch.from_numpy(bits[:, :k]).to(torch.float32)
                ok = torch.from_numpy(ok_np)
            elif self.backend == "pyldpc":
                c_hat = self._decode_pyldpc(llr)
                info_hat = c_hat[:, :k]
                ok = _syndrome_ok(self.code.H, c_hat)
            elif self.code.family == "nr":
                info_hat = self._dec(llr.to(self.device))
                ok = _syndrome_ok(self._H_check, self._dec._last_full)
                self._dec._last_full = None
            else:
                c_hat = self._dec(llr.to(self.device))
                info_hat = c_hat[:, :k]
                ok = _syndrome_ok(self.code.H, c_hat)
        return info_hat.to(out_device, torch.float32).contiguous(), ok.to(out_device)

    def __call__(self, llr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`decode`: the decoder as the last block of the separate chain (LLRs in, bits out)."""
        return self.decode(llr)

    def _decode_pyldpc(self, llr: torch.Tensor) -> torch.Tensor:
        # pyldpc.decode() itself fails on codes whose numbers of distinct row and column
        # degrees differ (it multiplies two np.unique() arrays: pyldpc 0.7.9,
        # decoder.py line 34), which is the case for most 802.11n codes. We therefore
        # drive pyldpc's own log-domain BP kernel (decoder._logbp_numba) with the same
        # loop as pyldpc.decode: all words iterate together, stopping once every word
        # satisfies H x = 0 or after `iterations` iterations.
        # Sign: pyldpc's messages are ln P(0)/P(1) and it decides bit 1 where the
        # posterior is <= 0, so its channel input is Lc = -llr.
        from pyldpc import utils as pl_utils
        from pyldpc.decoder import _logbp_numba

        if self._graph is None:
            self._graph = pl_utils._bitsandnodes(self._H_dense)
        bits_hist, bits_values, nodes_hist, nodes_values = self._graph
        lc = (-llr.detach().to("cpu", torch.float64)).numpy().T.copy()   # [n, B]
        m, n = self._H_dense.shape
        lq = np.zeros((m, n, lc.shape[1]))
        lr = np.zeros((m, n, lc.shape[1]))
        for it in range(self.iterations):
            lq, lr, post = _logbp_numba(bits_hist, bits_values, nodes_hist, nodes_values, lc, lq, lr, it)
            x = (post <= 0).astype(np.int64)                                # [n, B]
            if not ((self._H_dense @ x) % 2).any():
                break
        return torch.from_numpy(x.T.astype(np.float32))
