"""The capacity bound: the codec over an ideal channel code at k·log2(1+SNR) bits.

No separate scheme with the same codec and the same k can do better at that SNR, so its
curve is the envelope every BPG + LDPC curve stays under (docs/ARCHITECTURE.md §1). On fading
channels the bound uses the AWGN capacity at the *average* SNR (reported as such). On a channel
that offers ``capacity_bits`` (OFDM) it is the per-RE capacity of the channel realization,
Σ_RE log2(1 + |H_RE|²·SNR) over the image's data REs (``mcs = capacity-per-re``).
"""

from __future__ import annotations

import math

import torch

from linksim.digital.separate import SourceCodedScheme
from linksim.units import capacity_bits


class CapacityScheme(SourceCodedScheme):
    """The same codec over an ideal code at k·log2(1+SNR) bits, error-free: the upper bound
    of every separate scheme at that k (AWGN capacity; on fading channels it is the AWGN
    capacity at the average SNR, labelled as such)."""

    kind = "capacity"

    def send_one(self, image, k, snr_db, channel, generator) -> dict:
        per_re = getattr(channel, "capacity_bits", None)
        if per_re is not None:
            # a channel whose REs differ (OFDM): Σ log2(1 + |H|²·SNR) of this realization's k REs
            probe = torch.ones(1, k, dtype=torch.complex64)
            budget, label = math.floor(float(per_re(probe, snr_db, generator)[0])), "capacity-per-re"
        else:
            budget, label = math.floor(capacity_bits(k, snr_db)), "capacity"
        ladder = self.ladder(image)
        rung = ladder.best_fitting(budget)
        report = dict(mcs=label, budget_bits=budget, codewords=0, codeword_errors=0, channel_uses_used=k,
                      **self.codec_report(rung))
        if rung is None:
            return dict(bits=0, decoded=False, **self.failed(image), **report)
        return dict(bits=rung.payload_bits, decoded=True, **self.received(ladder, rung), **report)
