"""LDPC codes for the separate scheme: IEEE 802.11n codes, 5G NR codes (Sionna), BP decoders.

Public API::

    code = get_code("wifi-1944-2/3")          # or "nr-500-1000"; available_codes() lists Wi-Fi
    c = code.encode(u)                         # [B, k] float32 {0,1} -> [B, n] float32 {0,1}
    c = LDPCEncoder(code)(u)                   # the same, as a block of the separate chain
    dec = LDPCDecoder(code, iterations=20)     # backend "numba" (default; Sionna for NR) | "sionna" | "pyldpc"
    u_hat, parity_ok = dec.decode(llr)         # llr [B, n] float32, positive -> bit 1 (dec(llr): the same)
    errors, frames = simulate_fer(code, ebno_db=2.0, frames=1000, generator=g)

Modules: :mod:`~linksim.digital.ldpc.wifi` (802.11n tables and expansion),
:mod:`~linksim.digital.ldpc.code` (LDPCCode, LDPCEncoder, names), :mod:`~linksim.digital.ldpc.nr`
(5G NR via Sionna), :mod:`~linksim.digital.ldpc.decoder` (BP backends),
:mod:`~linksim.digital.ldpc.numba_decoder` (the fast CPU decoder: layered min-sum / sum-product),
:mod:`~linksim.digital.ldpc.thresholds` (FER simulation on BPSK/AWGN),
:mod:`~linksim.digital.ldpc.gf2` (GF(2) helpers).
"""

from linksim.digital.ldpc.code import LDPCCode, LDPCEncoder, available_codes, get_code
from linksim.digital.ldpc.decoder import LDPCDecoder
from linksim.digital.ldpc.thresholds import simulate_fer

__all__ = ["LDPCCode", "LDPCDecoder", "LDPCEncoder", "available_codes", "get_code", "simulate_fer"]
