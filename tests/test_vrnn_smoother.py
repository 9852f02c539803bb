"""The VRNN's smoothing encoder, model files from before it, early stopping and learning-rate schedules."""

from __future__ import annotations

import json
import struct
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from molmovie import InputError
from molmovie.inversion import VRNN, load_method
from molmovie.inversion._vrnn_net import VRNNNet
from molmovie.inversion.losses import LRSchedule, Patience

from test_inversion import FAST, make_dataset

TINY = FAST["vrnn"]
DATA = Path(__file__).parent / "data"


def _net(smoother: bool) -> VRNNNet:
    with torch.random.fork_rng(devices=[]):  # the weights drawn from seed 0; the global generator left as it was
        torch.manual_seed(0)
        return VRNNNet(n_q=7, latent=4, hidden=10, features=5, decoder=False, smoother=smoother).eval()


@pytest.mark.parametrize("smoother", [False, True])
def test_only_the_smoother_sees_the_future(smoother):
    net = _net(smoother)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 12, 7, generator=gen)
    mask = torch.ones(3, 12)
    later = x.clone()
    later[:, 8] += 1.0  # change frame 8 only
    with torch.no_grad():
        a, b = net(x, mask=mask)["q_mean"], net(later, mask=mask)["q_mean"]
    past = (a[:, :8] - b[:, :8]).abs().max()
    if smoother:
        assert past > 1e-4  # frames 0-7 answer to frame 8
    else:
        assert past == 0  # a filter's frame t depends on frames up to t only
    assert (a[:, 8] - b[:, 8]).abs().max() > 1e-4
    # the filter's prior for frame t reads frames before t only
    if not smoother:
        with torch.no_grad():
            pa, pb = net(x, mask=mask)["p_mean"], net(later, mask=mask)["p_mean"]
        assert (pa[:, :9] - pb[:, :9]).abs().max() == 0 and (pa[:, 9] - pb[:, 9]).abs().max() > 1e-4


def test_smoother_reads_each_sequence_back_from_its_own_last_frame():
    net = _net(True)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 10, 7, generator=gen)
    lengths = torch.tensor([10, 6])
    mask = (torch.arange(10)[None, :] < lengths[:, None]).float()
    padded = x.clone()
    padded[1, 6:] = 5.0 * torch.randn(4, 7, generator=gen)  # what lies past the length
    with torch.no_grad():
        a = net(x, mask=mask)["q_mean"]
        b = net(padded, mask=mask)["q_mean"]
        alone = net(x[1:, :6], mask=torch.ones(1, 6))["q_mean"]  # the short sequence on its own
    torch.testing.assert_close(a[1, :6], b[1, :6], rtol=0, atol=0)
    torch.testing.assert_close(a[1, :6], alone[0], rtol=1e-6, atol=1e-6)
    # without a mask every frame counts: the padding then reaches the valid frames
    with torch.no_grad():
        assert (net(x)["q_mean"][1, :6] - net(padded)["q_mean"][1, :6]).abs().max() > 1e-4


def test_a_filter_and_a_smoother_from_one_seed_start_from_the_filters_weights():
    f, s = _net(False).state_dict(), _net(True).state_dict()
    assert set(s) - set(f) and all(k.startswith(("back.", "enc_a.")) for k in set(s) - set(f))
    for k, v in f.items():
        assert torch.equal(v, s[k]), k


def test_smoother_trains_saves_and_loads(tmp_path):
    ds = make_dataset(M=12, T=8, Q=10, dissociate=0.5)
    model = VRNN(**dict(TINY, encoder="smoother")).fit(ds)
    pred = model.predict(ds.dS, q=ds.q, lengths=ds.length)
    model.save(tmp_path / "s.safetensors")
    again = load_method(tmp_path / "s.safetensors")
    assert again.encoder == "smoother" and again.net_.smoother
    same = again.predict(ds.dS, q=ds.q, lengths=ds.length)
    np.testing.assert_array_equal(same.distances, pred.distances)
    np.testing.assert_array_equal(same.std, pred.std)


def test_model_file_from_before_the_encoder_setting_loads_as_the_filter_it_was():
    # written by molmovie before the `encoder` and `schedule` settings existed (its own VRNN code),
    # with its predictions then
    before = np.load(DATA / "vrnn_filter_v1_prediction.npz")
    header = _header(DATA / "vrnn_filter_v1.safetensors")
    assert "encoder" not in json.loads(header["__metadata__"]["molmovie"])["config"]["settings"]
    model = load_method(DATA / "vrnn_filter_v1.safetensors")
    assert model.encoder == "filter" and model.schedule == "constant" and not model.net_.smoother
    model.set_params(refine=False)  # the network's own prediction (the signal fit at inference came later)
    pred = model.predict(before["dS"], q=before["q"], lengths=before["lengths"])
    # The same float64 arithmetic, but another CPU's BLAS kernels sum each layer's dot products (at most
    # 32 terms: the LSTM gates) in another order: a few ulps per layer, carried by the recurrence over the
    # 9 frames. Bound: frames x widest sum x eps (~6e-14 relative); a wrong or changed model is off by >1e-3.
    rtol = before["dS"].shape[1] * 32 * np.finfo(float).eps
    np.testing.assert_allclose(pred.distances, before["distances"], rtol=rtol, atol=0)
    np.testing.assert_allclose(pred.std, before["std"], rtol=rtol, atol=0)


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def test_new_settings_are_validated():
    with pytest.raises(InputError, match="encoder"):
        VRNN(encoder="backward").check_settings()
    with pytest.raises(InputError, match="schedule"):
        VRNN(schedule="cosine").check_settings()


# ----------------------------------------------------------------------------- early stopping and schedules


def test_patience_stops_after_patience_epochs_without_improvement():
    losses = [9.0, 8.0, 7.0, 7.5, 6.0, 6.5, 6.2, 6.0, 6.1, 5.0]
    stop = Patience(3)
    stopped = next(e for e, loss in enumerate(losses, 1) if stop.update(e, loss))
    assert stopped == 8 and stop.best_epoch == 5 and stop.best_loss == 6.0  # 6.0 at epoch 8 ties, does not improve


def test_patience_ignores_epochs_before_its_start():
    # a loss that rises while the physics term ramps up (epochs 1-3) is neither best nor counted
    stop = Patience(2, start=4)
    seen = [stop.update(e, loss) for e, loss in enumerate([1.0, 2.0, 3.0, 4.0, 4.5, 3.9, 4.1, 4.2], 1)]
    assert seen == [False] * 7 + [True]
    assert stop.best_epoch == 6 and stop.best_loss == 3.9


def _optimiser(lr):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_plateau_schedule_warms_up_then_divides_by_three_each_quarter_patience():
    opt = _optimiser(0.3)
    sched = LRSchedule(opt, "plateau", 0.3, epochs=50, steps=4, patience=8)
    rates = [sched.last_lr]
    for _ in range(4):
        sched.step_end()
        rates.append(sched.last_lr)
    np.testing.assert_allclose(rates, [0.075, 0.15, 0.225, 0.3, 0.3])
    losses = [5.0, 4.0, 4.1, 4.2, 4.0, 4.3, 3.0, 3.5, 3.6]  # counted from epoch 1
    stop, seen = Patience(8), []
    for e, loss in enumerate(losses, 1):
        stop.update(e, loss)
        sched.epoch_end(True, stop.since_best)
        seen.append(sched.last_lr)
    # wait = 8 // 4 = 2: divided after the 2nd and 4th epochs without improvement (epochs 4 and 6),
    # and again 2 epochs after the improvement at epoch 7
    np.testing.assert_allclose(seen, [0.3, 0.3, 0.3, 0.1, 0.1, 0.1 / 3, 0.1 / 3, 0.1 / 3, 0.1 / 9])
    # not while the loss is not yet counted
    sched.epoch_end(False, 2)
    assert sched.last_lr == pytest.approx(0.1 / 9)


def test_onecycle_schedule_peaks_at_lr_and_anneals():
    opt = _optimiser(1.0)
    sched = LRSchedule(opt, "onecycle", 1.0, epochs=10, steps=10, patience=5)
    rates = [sched.last_lr]
    for _ in range(99):
        opt.step()
        sched.step_end()
        rates.append(sched.last_lr)
    assert rates[0] == pytest.approx(1 / 25) and max(rates) == pytest.approx(1.0)
    assert int(np.argmax(rates)) == 29 and rates[-1] == pytest.approx(1e-4, rel=1e-3)
    assert all(b <= a for a, b in pairwise(rates[29:]))
    constant = LRSchedule(_optimiser(0.2), "constant", 0.2, epochs=3, steps=2, patience=1)
    constant.step_end()
    constant.epoch_end(True, 1)
    assert constant.last_lr == 0.2


def test_fit_follows_the_plateau_schedule_and_stops_at_the_patience():
    # one step per epoch (batch > sequences): the rate is lr from the end of epoch 1 on, divided by 3
    # after every patience // 4 = 1 epoch without a better validation loss; training stops after 4
    ds = make_dataset(M=20, T=8, Q=10, dissociate=0.0)
    train, val = ds.split("train"), ds.split("val")
    model = VRNN(**dict(TINY, schedule="plateau", epochs=30, patience=4, lr=0.05, batch_size=64)).fit(train, val)
    val_losses = [h["val_loss"] for h in model.history_]
    stop, rate, want = Patience(4), 0.05, []
    for e, loss in enumerate(val_losses, 1):
        done = stop.update(e, loss)
        rate = rate / 3 if stop.since_best > 0 else rate
        want.append(rate)
        if done:
            break
    assert e == len(model.history_) < 30 and model.best_epoch_ == stop.best_epoch
    np.testing.assert_allclose([h["lr"] for h in model.history_], want, rtol=1e-12)
    assert min(want) < 0.05
