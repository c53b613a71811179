"""5G NR LDPC codes (3GPP TS 38.212) through Sionna's rate-matching encoder.

The transmitted code of ``"nr-<k>-<n>"`` is derived from a base graph 1 or 2 mother code
by puncturing the first 2Z systematic bits, shortening (filler bits) and truncating
parity bits, exactly as :class:`sionna.phy.fec.ldpc.LDPC5GEncoder` does (no bit
interleaver: ``num_bits_per_symbol=None``). Decoding uses
:class:`sionna.phy.fec.ldpc.LDPC5GDecoder` (see :mod:`linksim.digital.ldpc.decoder`).

Example
-------
>>> import torch
>>> from linksim.digital.ldpc import get_code
>>> code = get_code("nr-500-1000")
>>> code.encode(torch.zeros(2, 500)).shape
torch.Size([2, 1000])
"""

from __future__ import annotations

import torch

from linksim.errors import ConfigError


def nr_code(k: int, n: int, name: str, allowed: str):
    """Build the :class:`~linksim.digital.ldpc.code.LDPCCode` of a 5G NR code.

    :param k: Information bits (12 <= k <= 8448).
    :param n: Transmitted codeword bits (n > k).
    :param name: The name the user gave (for error messages).
    :param allowed: Text describing the allowed names (for error messages).
    :raises ConfigError: (field ``code``) if Sionna rejects (k, n).
    """
    from linksim.digital.ldpc.code import LDPCCode
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    if not (12 <= k <= 8448 and n > k):
        raise ConfigError("code", name, allowed)
    try:
        enc = LDPC5GEncoder(k, n, device="cpu")
    except (ValueError, AssertionError, ArithmeticError) as e:
        raise ConfigError("code", name, f"{allowed}; Sionna: {e}") from None

    def encode(info: torch.Tensor) -> torch.Tensor:
        shape = info.shape
        c = enc(info.detach().to("cpu").reshape(-1, k))
        return c.reshape(*shape[:-1], n).to(device=info.device, dtype=torch.float32)

    return LDPCCode(name=f"nr-{k}-{n}", n=n, k=k, rate=k / n, H=None, family="nr",
                    _encode=encode, _extra={"encoder": enc})
