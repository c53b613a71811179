"""The one training loop (linksim.train.loop), its state file, and the model-card layout."""

from __future__ import annotations

import math

import pytest
import torch

from linksim.train.cards import ModelCard, loss_curve, wall_time_row
from linksim.train.loop import EMA, TrainLoop, cosine_lr, descend
from linksim.train.state import STATE, load_train_state


def test_cosine_lr_warms_up_linearly_then_falls_to_a_hundredth():
    steps, lr = 102, 1.0  # warm-up: steps // 50 = 2 steps
    assert cosine_lr(0, steps, lr) == 0.5 and cosine_lr(1, steps, lr) == 1.0
    assert cosine_lr(2, steps, lr) == 1.0  # the cosine starts at the peak
    assert cosine_lr(52, steps, lr) == pytest.approx(0.505)  # halfway: (lr + lr/100) / 2
    assert cosine_lr(102, steps, lr) == pytest.approx(0.01)  # t = 1: lr/100
    values = [cosine_lr(s, steps, lr) for s in range(2, steps)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_descend_clips_the_global_gradient_norm():
    w = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=1.0)
    descend(opt, (w * torch.tensor([30.0, 40.0, 0.0, 0.0])).sum(), [w], max_norm=1.0)  # gradient norm 50
    assert torch.allclose(w.detach(), torch.tensor([-0.6, -0.8, 0.0, 0.0]), atol=1e-6)
    descend(opt, (w * torch.tensor([30.0, 40.0, 0.0, 0.0])).sum(), [w], max_norm=None)  # not clipped
    assert torch.allclose(w.detach(), torch.tensor([-30.6, -40.8, 0.0, 0.0]), atol=1e-5)


def test_ema_warms_up_its_decay_and_copies_buffers():
    source = torch.nn.BatchNorm1d(1)
    ema = EMA(source, 0.9)
    with torch.no_grad():
        source.weight.fill_(2.0)  # the average starts at 1
        source.running_mean.fill_(5.0)
    ema.update(0)  # decay min(0.9, 1/10) = 0.1: mostly the new weights
    assert ema.model.weight.item() == pytest.approx(0.1 * 1 + 0.9 * 2)
    assert ema.model.running_mean.item() == 5.0
    ema.update(1000)  # decay 0.9
    assert ema.model.weight.item() == pytest.approx(0.9 * 1.9 + 0.1 * 2)
    assert not ema.model.weight.requires_grad
    plain = EMA(source, 0.0)
    assert plain.model is source and not plain.active


class _Regression:
    """A linear regression trained from draws of the loop's generator (a stand-in trainer)."""

    def __init__(self, out, steps=7, save_every=2, **loop_options):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        self.gen = torch.Generator().manual_seed(1)
        opt = torch.optim.Adam(self.model.parameters(), lr=0.1)
        self.writes = []
        self.loop = TrainLoop(state_dir=out, steps=steps, lr=0.1, save_every=save_every, opt=opt, gen=self.gen,
                              params=self.model.parameters(), weights=self.model, **loop_options)

    def step(self, step):
        x = torch.randn(4, 3, generator=self.gen)
        loss = (self.model(x).squeeze(1) - x.sum(1)).pow(2).mean()
        return loss, loss

    def write(self, final):
        self.writes.append((self.loop.step, final))

    def run(self, stop_after=None, keep_state=False):
        self.loop.run(self.step, self.write, stop_after=stop_after, progress=False, desc="test")
        self.loop.finish(self.write, keep_state)
        return self


def test_an_interrupted_run_resumes_bit_exactly(tmp_path):
    full = _Regression(tmp_path / "full").run()
    assert full.writes == [(2, False), (4, False), (6, False), (7, True)]
    assert not (tmp_path / "full" / STATE).exists()  # removed at the end
    first = _Regression(tmp_path / "cut").run(stop_after=3)
    assert first.writes == [(2, False), (3, False)]  # the cadence, then where the call stopped
    second = _Regression(tmp_path / "cut")
    assert second.loop.resumed and second.loop.step == 3
    second.run()
    assert torch.equal(second.model.weight, full.model.weight) and torch.equal(second.model.bias, full.model.bias)
    # the same loss means, the interrupted interval 2..4 recorded in two parts
    assert second.loop.history[:1] + second.loop.history[3:] == full.loop.history[:1] + full.loop.history[2:]
    assert [h["steps"] for h in second.loop.history] == [2, 1, 1, 2, 1]  # loss means since the last save
    assert second.loop.opt.param_groups[0]["lr"] == cosine_lr(6, 7, 0.1)


def test_without_a_save_at_stop_a_rerun_starts_from_the_last_cadence_save(tmp_path):
    first = _Regression(tmp_path / "cut", save_at_stop=False).run(stop_after=3)
    assert first.writes == [(2, False)]
    step, _ = load_train_state(tmp_path / "cut", first.loop.opt, torch.Generator())
    assert step == 2
    again = _Regression(tmp_path / "cut", save_at_stop=False).run()
    full = _Regression(tmp_path / "full", save_at_stop=False).run()
    assert torch.equal(again.model.weight, full.model.weight)


def test_keep_state_keeps_the_final_state(tmp_path):
    run = _Regression(tmp_path / "keep").run(keep_state=True)
    step, history = load_train_state(tmp_path / "keep", run.loop.opt, torch.Generator())
    assert step == 7 and history == run.loop.history


def test_a_history_without_loss_means_is_the_trainers(tmp_path):
    run = _Regression(tmp_path / "val", loss_history=False).run()
    assert run.loop.history == []


def test_model_card_layout():
    card = ModelCard("m", ["what it is"], [("Training", ["- a", "- b"]), ("Use", ["x"])])
    assert card.text() == "# m\n\nwhat it is\n\n## Training\n\n- a\n- b\n\n## Use\n\nx\n"
    assert wall_time_row({"wall_seconds": 90, "threads": 2, "machine": "x86_64"}) == \
        "- wall time 1.5 min on 2 CPU thread(s) (x86_64)"
    assert wall_time_row({"wall_seconds": 60, "threads": 4, "machine": "m", "device": "cuda:0 (GPU)"}) == \
        "- wall time 1.0 min on cuda:0 (GPU), 4 CPU thread(s) (m) feeding it"


def test_loss_curve_shows_evenly_spaced_rows_with_the_first_and_last():
    history = [{"step": 10 * (i + 1), "loss": 1 / (i + 1), "steps": 10} for i in range(23)]
    rows = loss_curve(history, rows=12)
    assert len(rows) == 2 + 12
    assert rows[2] == "| 10 | 1 |" and rows[-1] == f"| 230 | {1 / 23:.4g} |"
    assert loss_curve(history[:3], rows=12, steps_column=True)[2:] == ["| 10 | 1 | 10 |", "| 20 | 0.5 | 10 |",
                                                                       f"| 30 | {1 / 3:.4g} | 10 |"]
    assert math.isclose(float(rows[8].split("|")[2]), 1 / 13, rel_tol=1e-3)  # row 6 of 12: entry round(6·22/11) = 12
