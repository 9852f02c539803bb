"""The VRNN network (PyTorch), after Chung et al. (2015) as used in vid2param.

Imported only inside the VRNN's methods (:mod:`molmovie.inversion._vrnn_training`,
:mod:`molmovie.inversion._vrnn_file`) when a VRNN is fitted or loaded, so that
importing :mod:`molmovie.inversion` stays light.

At frame t, with the LSTM state (h_{t-1}, c_{t-1}):

* features        φ_x(x_t)                         (MLP of the standardised ΔS_t)
* encoder         q(z_t | x_t, h_{t-1}, c_{t-1}) = N(μ_q, diag σ_q²)
* learned prior   p(z_t | h_{t-1}, c_{t-1})       = N(μ_p, diag σ_p²)
* decoder (opt.)  p(x_t | z_t, h_{t-1})           = N(μ_x, I)
* recurrence      (h_t, c_t) = LSTM([φ_x(x_t), φ_z(z_t)], (h_{t-1}, c_{t-1}))

With ``smoother=True`` the encoder also sees the future: a backward GRU runs
over φ_x(x_T), ..., φ_x(x_1) (each sequence reversed within its length), and
its state a_t, a summary of x_{t:T}, enters the encoder's first layer,

* smoothing encoder  q(z_t | x_{t:T}, h_{t-1}, c_{t-1}) = N(μ_q, diag σ_q²),

so the posterior is q(z_t | x_{1:T}) (the history through h_{t-1}), as in
the SRNN of Fraccaro et al., "Sequential Neural Models with Stochastic
Layers" (NeurIPS 2016). The prior stays causal: the KL term still asks the
dynamics to predict frame t from the past.

Standard deviations are softplus of the network outputs (plus 1e-4).
Everything that does not depend on the recurrence (φ_x, its share of the
encoder and LSTM inputs, the prior and the decoder) is computed for all
frames at once; only the small recurrent part runs frame by frame.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_MIN_STD = 1e-4


def _mlp(n_in: int, n_hidden: int, n_out: int, *, last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out)]
    if last_act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _gauss(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, s = raw.chunk(2, dim=-1)
    return mean, F.softplus(s) + _MIN_STD


class VRNNNet(nn.Module):
    """Variational recurrent network over sequences of standardised ΔS.

    Parameters
    ----------
    n_q : int
        Input size (q points).
    latent : int
        Latent size; the first dimensions are the supervised ones.
    hidden : int
        LSTM state size and MLP width.
    features : int
        Size of φ_x and φ_z.
    decoder : bool
        Build the decoder p(x_t | z_t, h_{t-1}).
    smoother : bool, default False
        Build the backward GRU whose state feeds the encoder (q(z_t | x_{1:T}));
        False: the causal filter q(z_t | x_{1:t}).
    """

    def __init__(self, n_q: int, latent: int, hidden: int, features: int, decoder: bool, smoother: bool = False):
        super().__init__()
        self.n_q, self.latent, self.hidden, self.features = n_q, latent, hidden, features
        self.smoother = bool(smoother)
        self.phi_x = _mlp(n_q, hidden, features, last_act=True)
        self.phi_z = _mlp(latent, hidden, features, last_act=True)
        # encoder first layer, split into its x part (batched) and its (h, c) part (recurrent)
        self.enc_x = nn.Linear(features, hidden)
        self.enc_hc = nn.Linear(2 * hidden, hidden, bias=False)
        self.enc_out = nn.Linear(hidden, 2 * latent)
        self.prior = _mlp(2 * hidden, hidden, 2 * latent, last_act=False)
        # LSTM gates = W_x φ_x + W_z φ_z + W_h h + b, in PyTorch's (i, f, g, o) order
        self.lstm_x = nn.Linear(features, 4 * hidden)
        self.lstm_z = nn.Linear(features, 4 * hidden, bias=False)
        self.lstm_h = nn.Linear(hidden, 4 * hidden, bias=False)
        self.dec = _mlp(features + hidden, hidden, n_q, last_act=False) if decoder else None
        if self.smoother:
            # registered after the filter's modules, so a filter and a smoother built from
            # the same seed share the filter's initial weights
            self.back = nn.GRU(features, hidden, batch_first=True)
            self.enc_a = nn.Linear(hidden, hidden, bias=False)

    def backward_states(self, fx: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The backward GRU's state a_t after reading frames T_b - 1, ..., t of each sequence.

        Parameters
        ----------
        fx : tensor, shape (B, T, features)
            φ_x of the standardised ΔS.
        mask : tensor, shape (B, T) or None
            1 on valid frames (a prefix of each sequence); None: all valid.

        Returns
        -------
        tensor, shape (B, T, hidden); past each length the values are undefined.
        """
        B, T, _ = fx.shape
        if mask is None:
            return self.back(fx.flip(1))[0].flip(1)
        # reverse each sequence within its length (an involution), so that the
        # padding past the length is read last, after every valid frame
        length = mask.sum(1).round().long().clamp(min=1)[:, None]
        t = torch.arange(T, device=fx.device)[None, :]
        index = torch.where(t < length, length - 1 - t, t)[..., None]
        rev = torch.gather(fx, 1, index.expand_as(fx))
        a = self.back(rev)[0]
        return torch.gather(a, 1, index.expand(B, T, a.shape[-1]))

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run over whole sequences.

        Parameters
        ----------
        x : tensor, shape (B, T, Q)
            Standardised ΔS (zeros past each length are fine: the outputs
            there are masked by the loss and ignored by predictions).
        eps : tensor, shape (T, B, latent), optional
            Standard normal noise for z_t = μ_q + σ_q ε_t. None: z_t = μ_q
            (deterministic, used for validation and prediction).
        mask : tensor, shape (B, T), optional
            1 on valid frames; the smoother reads each sequence backwards from
            its last valid frame. None: every frame is valid. The filter
            ignores it (frame t depends only on frames up to t).

        Returns
        -------
        dict with ``q_mean``, ``q_std``, ``p_mean``, ``p_std`` (B, T, latent)
        and, with a decoder, ``x_mean`` (B, T, Q).
        """
        B, T, _ = x.shape
        H = self.hidden
        fx = self.phi_x(x)
        # unbind (not [:, t]): its backward stacks the T gradients once instead of
        # scattering each into a zero tensor of the whole sequence (O(T^2))
        enc_x = self.enc_x(fx)
        if self.smoother:
            enc_x = enc_x + self.enc_a(self.backward_states(fx, mask))
        enc_x = enc_x.unbind(1)
        gates_x = self.lstm_x(fx).unbind(1)
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
        q_mean, q_std, hs, cs, zs = [], [], [], [], []
        for t in range(T):
            hs.append(h)
            cs.append(c)
            hc = torch.cat([h, c], dim=-1)
            m, s = _gauss(self.enc_out(F.relu(enc_x[t] + self.enc_hc(hc))))
            z = m if eps is None else m + s * eps[t]
            fz = self.phi_z(z)
            gates = gates_x[t] + self.lstm_z(fz) + self.lstm_h(h)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            q_mean.append(m)
            q_std.append(s)
            zs.append(fz)
        h_prev = torch.stack(hs, dim=1)
        c_prev = torch.stack(cs, dim=1)
        p_mean, p_std = _gauss(self.prior(torch.cat([h_prev, c_prev], dim=-1)))
        out = {
            "q_mean": torch.stack(q_mean, dim=1),
            "q_std": torch.stack(q_std, dim=1),
            "p_mean": p_mean,
            "p_std": p_std,
        }
        if self.dec is not None:
            out["x_mean"] = self.dec(torch.cat([torch.stack(zs, dim=1), h_prev], dim=-1))
        return out
