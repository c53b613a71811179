"""``linksim train …``: one module per trainer, all on one training loop.

* :mod:`~linksim.train.loop` — the loop every trainer runs: cosine learning rate, optimizer
  step, EMA, progress, save cadence, stop-after, resume, final save.
* :mod:`~linksim.train.state` — the resumable state file (safetensors).
* :mod:`~linksim.train.cards` — the common layout of ``MODEL_CARD.md``.
* :mod:`~linksim.train.flags` — command-line flags generated from the settings dataclasses.
* Trainers: :mod:`~linksim.train.deepjscc` (``train deepjscc``, and ``eval deepjscc``),
  :mod:`~linksim.train.prior` (``train prior``), :mod:`~linksim.train.diffjscc_base`
  (``train diffjscc-base``), :mod:`~linksim.train.diffjscc_control` (``train
  diffjscc-control``), :mod:`~linksim.train.inn` (``train inn``); and
  :mod:`~linksim.train.sigma_y` (``calibrate sigma-y``), which fits a restorer setting.

The crop samplers the trainers draw from are in the data layer (:mod:`linksim.crops`).
Nothing is imported here eagerly: ``import linksim.train.state`` does not load diffusers.
"""
