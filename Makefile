# linksim — set-up and the two entry points (see README.md).
#   make demo   create .venv, install linksim, run the cliff-vs-smooth scenario (DeepJSCC vs. BPG + LDPC) on the bundled photos
#   make test   create .venv, install linksim, run the test suite
#   make lab    open the teaching labs (notebooks/) in JupyterLab, sliders live
#   make labs   execute every lab at its default settings and write it, with outputs, to docs/labs/*.html
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-slow bench clean-venv checkpoints lab labs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel numpy
	# pyldpc ships only as an sdist whose build imports numpy: build it against the numpy above.
	$(BIN)/python -m pip install --no-build-isolation "pyldpc>=0.7.9"
	$(BIN)/python -m pip install -e ".[dev,lab]"
	touch $@

setup: $(VENV)/.installed

# Two worker processes: the sweep's images run side by side (the same results.csv bytes as one process).
demo: setup
	$(BIN)/linksim run scenarios/cliff_vs_smooth.yaml --workers 2

test: setup
	$(BIN)/python -m pytest

# The labs run from notebooks/ (the kernel's working folder); the explorer's grid is computed once
# (a few minutes) and cached under $$LINKSIM_CACHE/labs/.
lab: setup
	$(BIN)/jupyter lab notebooks/

labs: setup
	mkdir -p docs/labs
	$(BIN)/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=7200 --ExecutePreprocessor.store_widget_state=False \
	  --ExecutePreprocessor.kernel_name=python3 --output-dir docs/labs notebooks/*.ipynb

test-slow: setup
	$(BIN)/python -m pytest -m slow

clean-venv:
	rm -rf $(VENV)

# The shipped DeepJSCC checkpoints, the face prior, the INNs and DiffJSCC (linksim/checkpoints/), retrained from
# ../shared/data (development data, not in the repository) on the CPU; see each MODEL_CARD.md.
DATA ?= ../shared/data
TRAIN := $(BIN)/linksim train deepjscc --data $(DATA)/train_natural --val-data $(DATA)/val_natural/set14
# every DeepJSCC starts as the linear analog code (its residual CNN paths at zero)
LINEAR := --linear-path linear-pca16-natural
STAGES := runs/checkpoint-stages
CKPT := linksim/checkpoints
CONTROL := $(BIN)/linksim train diffjscc-control --base diffjscc-base-natural --data $(DATA)/train_natural \
  --size 64 --batch 8 --lr 5e-4 --save-every 200 --steps 1200
INN_DATA := --data $(DATA)/faces/celeba_aligned_89x109 --val-data $(DATA)/faces/celebahq_stargan_v2_128
checkpoints: setup
	$(BIN)/linksim train linear-basis --data $(DATA)/train_natural --out $(CKPT)/linear-pca16-natural
	# the flagship in four runs, each warm-started from the last (its card lists them): lr 1e-3 from the
	# linear code, then lr 3e-4 with new seeds (a fresh cosine schedule each time), the last one 12000 steps
	$(TRAIN) $(LINEAR) --bcr 1/48 --channel awgn --snr-range -5 15 --steps 3000 --val-every 1000 --seed 1 --out $(STAGES)/r1_48-1
	$(TRAIN) $(LINEAR) --bcr 1/48 --channel awgn --snr-range -5 15 --steps 6000 --val-every 2000 --seed 5 --lr 3e-4 \
	  --init $(STAGES)/r1_48-1 --out $(STAGES)/r1_48-2
	$(TRAIN) $(LINEAR) --bcr 1/48 --channel awgn --snr-range -5 15 --steps 1500 --val-every 1500 --seed 7 --lr 3e-4 --loss mse \
	  --init $(STAGES)/r1_48-2 --out $(STAGES)/r1_48-3
	$(TRAIN) $(LINEAR) --bcr 1/48 --channel awgn --snr-range -5 15 --steps 12000 --val-every 2000 --seed 8 --lr 3e-4 \
	  --init $(STAGES)/r1_48-3 --out $(CKPT)/deepjscc-awgn-r1_48
	$(TRAIN) $(LINEAR) --bcr 1/12 --channel awgn --snr-range -5 15 --steps 2000 --val-every 2000 --lr 5e-4 --seed 2 --init $(CKPT)/deepjscc-awgn-r1_48 --out $(CKPT)/deepjscc-awgn-r1_12
	$(TRAIN) $(LINEAR) --bcr 1/192 --channel awgn --snr-range -5 15 --steps 2000 --val-every 2000 --lr 5e-4 --seed 3 --init $(CKPT)/deepjscc-awgn-r1_48 --out $(CKPT)/deepjscc-awgn-r1_192
	$(TRAIN) $(LINEAR) --bcr 1/768 --channel awgn --snr-range -5 15 --steps 2000 --val-every 2000 --lr 5e-4 --seed 4 --init $(CKPT)/deepjscc-awgn-r1_192 --out $(CKPT)/deepjscc-awgn-r1_768
	$(TRAIN) $(LINEAR) --bcr 1/48 --channel rayleigh-block --snr-range -5 15 --steps 2000 --val-every 2000 --lr 5e-4 --seed 4 --init $(CKPT)/deepjscc-awgn-r1_48 --out $(CKPT)/deepjscc-rayleigh-r1_48
	# OFDM over TDL-A with LS CSI in the loop
	$(TRAIN) $(LINEAR) --bcr 1/48 --channel ofdm-tdl-a --snr-range -5 15 --steps 150 --val-every 150 --save-every 50 --lr 3e-4 --seed 3 --init $(CKPT)/deepjscc-awgn-r1_48 --out $(CKPT)/deepjscc-ofdm-tdl-a-r1_48
	# DiffJSCC's other bandwidths (cpp 1/128 and 1/32)
	$(TRAIN) $(LINEAR) --bcr 1/384 --channel awgn --snr-range -5 15 --steps 1500 --val-every 1500 --lr 5e-4 --seed 3 --init $(CKPT)/deepjscc-awgn-r1_192 --out $(CKPT)/deepjscc-awgn-r1_384
	$(TRAIN) $(LINEAR) --bcr 1/96 --channel awgn --snr-range -5 15 --steps 1500 --val-every 1500 --lr 5e-4 --seed 3 --init $(CKPT)/deepjscc-awgn-r1_48 --out $(CKPT)/deepjscc-awgn-r1_96
	for m in deepjscc-awgn-r1_12 deepjscc-awgn-r1_48 deepjscc-awgn-r1_96 deepjscc-awgn-r1_192 deepjscc-awgn-r1_384 deepjscc-awgn-r1_768 deepjscc-rayleigh-r1_48; do \
	  $(BIN)/linksim eval deepjscc $(CKPT)/$$m --data $(DATA)/kodak --snr $$(seq -5 15) --record "Kodak (24 images)"; done
	$(BIN)/linksim eval deepjscc $(CKPT)/deepjscc-ofdm-tdl-a-r1_48 --data $(DATA)/kodak --snr -5 0 5 10 15 \
	  --channel ofdm-tdl-a --limit 8 --record "Kodak (first 8 images)"
	$(BIN)/linksim train prior --data $(DATA)/faces --size 64 --channels 16 32 64 128 --layers-per-block 1 \
	  --attention-res 8 --steps 7000 --batch 16 --lr 3e-4 --ema 0.999 --seed 0 --bf16 --samples 16 --out $(CKPT)/ddpm-faces-64
	# the INNs of SING-INN / CommIN: 2,000 CelebA faces, held-out error on 56 other faces (model cards)
	$(BIN)/linksim train inn --deepjscc deepjscc-awgn-r1_192 $(INN_DATA) --snr-range -5 5 --steps 3000 --out $(CKPT)/inn-awgn-r1_192-faces
	$(BIN)/linksim train inn --deepjscc deepjscc-awgn-r1_192 $(INN_DATA) --commin --snr-range 1 1 --steps 1500 --out $(CKPT)/commin-awgn-r1_192-faces-1dB
	$(BIN)/linksim train inn --deepjscc deepjscc-awgn-r1_768 $(INN_DATA) --levels 3 --snr-range -5 5 --steps 3000 --out $(CKPT)/inn-awgn-r1_768-faces
	# DiffJSCC: the small latent diffusion base, then a control module behind each DeepJSCC it serves
	$(BIN)/linksim train diffjscc-base --data $(DATA)/train_natural --crop 64 --vae-channels 32 64 64 \
	  --unet-channels 64 96 128 --text-dim 64 --vae-steps 1200 --vae-batch 16 --vae-lr 5e-4 \
	  --unet-steps 2400 --unet-batch 32 --unet-lr 3e-4 --save-every 200 --out $(CKPT)/diffjscc-base-natural
	for r in r1_96 r1_192 r1_384; do \
	  $(CONTROL) --deepjscc deepjscc-awgn-$$r --out $(CKPT)/diffjscc-control-$$r; done
	$(CONTROL) --deepjscc deepjscc-awgn-r1_192 --no-snr --out $(CKPT)/diffjscc-control-r1_192-spatial
