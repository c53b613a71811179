"""Belief-propagation decoding of :class:`~linksim.digital.ldpc.code.LDPCCode` codes.

:class:`LDPCDecoder` wraps one backend for one code:

- ``"sionna"`` (default): :class:`sionna.phy.fec.ldpc.LDPCBPDecoder` on the code's ``H``
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

BACKENDS = ("sionna", "pyldpc")
CHECK_UPDATES = ("boxplus-phi", "boxplus", "minsum", "offset-minsum")


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
    :param backend: ``"sionna"`` or ``"pyldpc"`` (Wi-Fi codes only).
    :param iterations: Number of BP iterations (sionna: exactly this many; pyldpc: at most).
    :param check_update: Sionna check-node rule, one of ``boxplus-phi``, ``boxplus``,
        ``minsum``, ``offset-minsum`` (ignored by pyldpc, which is sum-product).
    :param device: Torch device of the Sionna decoder (default ``"cpu"``).

    :raises ConfigError: Unknown backend / check update, non-positive iterations, or a
        backend that does not support the code family.
    """

    def __init__(self, code: LDPCCode, backend: str = "sionna", iterations: int = 20,
                 check_update: str = "boxplus-phi", device: str = "cpu"):
        if backend not in BACKENDS:
            raise ConfigError("backend", backend, f"one of {', '.join(BACKENDS)}")
        if check_update not in CHECK_UPDATES:
            raise ConfigError("check_update", check_update, f"one of {', '.join(CHECK_UPDATES)}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError("iterations", iterations, "an integer >= 1")
        self.code, self.backend, self.iterations, self.check_update = code, backend, iterations, check_update
        self.device = device
        if backend == "pyldpc":
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
            if self.backend == "pyldpc":
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
