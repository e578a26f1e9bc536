"""Joint GP over (hyperparameters, training step), fitted together with the curve compression.

Shapes: ``X`` is ``(n, d + 1)``; its first ``d`` columns are the encoded hyperparameters
(:mod:`.search_space`), the last one the scaled step
``u = log(1 + t - t_lo) / log(1 + t_hi - t_lo)``.

Kernel: ``Matern52(r_x) * (s * exp(-(u - u')^2 / (2 l_t^2)) + late * w(t) w(t'))`` with the ARD
distance ``r_x^2 = sum_cont ((x_i - x'_i) / l_i)^2 + sum_cat 1[x_i != x'_i] / l_i^2``, so
categorical choices are compared by equality only; ``u`` is the log-scaled step and ``w`` the
linear fraction of the step range (a part of the score that only long runs reveal, see
:class:`JointKernel`, which may add a late part of each run's own). Priors keep lengthscales,
signal and noise away from the edges; the noise variance has a floor. Targets are the
compressed curve scores (:mod:`.curve`), standardised; the logistic parameters ``(m0, g0)`` of
the compression are GP hyperparameters too and all of them are fitted by maximising the
marginal likelihood plus log priors, with exact torch gradients and SciPy's L-BFGS-B.
Everything is float64 and uses Cholesky factorisations.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import Any

import gpytorch
from gpytorch.constraints import GreaterThan
from gpytorch.constraints import Interval
from gpytorch.constraints import Positive
from gpytorch.priors import GammaPrior
from gpytorch.priors import LogNormalPrior
from gpytorch.priors import NormalPrior
import numpy as np
import scipy.optimize
import torch

from optuna_boil._model import curve as _curve


MIN_NOISE = 1e-6


class FitError(RuntimeError):
    """The GP could not be fitted: every start of the optimiser failed numerically."""


LENGTHSCALE_PRIORS = ("gamma", "dim_lognormal")
_SQRT5 = 5.0**0.5
_LOG_2PI = float(np.log(2 * np.pi))


def gp_settings() -> Any:
    """Exact Cholesky-based linear algebra with a small jitter, whatever the data size."""
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(gpytorch.settings.fast_computations(False, False, False))
    stack.enter_context(gpytorch.settings.max_cholesky_size(10**9))
    stack.enter_context(gpytorch.settings.cholesky_jitter(float_value=1e-6, double_value=1e-8))
    stack.enter_context(gpytorch.settings.cholesky_max_tries(6))
    stack.enter_context(gpytorch.settings.skip_posterior_variances(False))
    return stack


# Parameter-free pieces of the kernel matrix: squared x distances per dimension, squared step
# gaps, late-term products w(t) w(t') and same-run indicators (None without run_noise).
_Pieces = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


class JointKernel(gpytorch.kernels.Kernel):
    """``Matern52(x) * (s * SE(t) + late * w(t) w(t'))``, ARD Matern (Hamming on categoricals).

    ``w(t) = (t - t_lo) / (t_hi - t_lo)`` is the fraction of the step range trained. The second
    term is a part of the score that only shows after long training (with the same x structure):
    short runs barely constrain it, so until long runs are observed the posterior at long budgets
    keeps the prior uncertainty ``late`` instead of inheriting the certainty of many short runs
    (which made the model propose only short runs when early reports do not depend on x).

    With ``run_noise`` a third term ``run * 1[x = x'] * w(t) w(t')`` is a late part of the score
    that belongs to one run (two runs of one configuration with different training seeds, as in
    reinforcement learning, end apart): the points of one curve share it, other configurations
    do not. A prediction at an observed configuration is then that run's score, at a new one a
    new run's. Without it one run per configuration cannot tell run-to-run noise from structure,
    and the fit explains the difference of nearby runs by an x lengthscale near zero.

    Args:
        is_categorical: Which x coordinates are categorical.
        log_span: ``log(1 + t_hi - t_lo)``, to map the GP's step coordinate back to ``w``.
        lengthscale_floor: ``b > 0`` adds a prior ``-b / l^2`` nats on each x lengthscale, a
            soft barrier against lengthscales collapsing to zero (0.01 costs 1 nat at 0.1).
        run_noise: Add the per-run term.
        lengthscale_prior: ``"dim_lognormal"`` (default): LogNormal(sqrt(2) + log(d) / 2,
            sqrt(3)) on each x lengthscale, the dimension-scaled prior of Hvarfner et al. (2024)
            that BoTorch uses (median ``4.1 sqrt(d)`` for ``d`` parameters). ``"gamma"``:
            Gamma(3, 6) (mode 1/3), the previous default.
    """

    has_lengthscale = False

    def __init__(
        self,
        is_categorical: np.ndarray,
        log_span: float = 0.0,
        lengthscale_floor: float = 0.0,
        run_noise: bool = False,
        lengthscale_prior: str = "dim_lognormal",
    ) -> None:
        super().__init__()
        if lengthscale_prior not in LENGTHSCALE_PRIORS:
            raise ValueError(
                f"Unknown lengthscale_prior {lengthscale_prior!r}; expected one of "
                f"{LENGTHSCALE_PRIORS}."
            )
        self.run_noise = bool(run_noise)
        d = int(is_categorical.size)
        self.log_span = float(log_span)
        self.register_buffer("is_cat", torch.as_tensor(is_categorical, dtype=torch.bool))
        self.register_parameter("raw_x_lengthscale", torch.nn.Parameter(torch.zeros(d)))
        self.register_parameter("raw_t_lengthscale", torch.nn.Parameter(torch.zeros(1)))
        self.register_parameter("raw_late", torch.nn.Parameter(torch.zeros(())))
        self.register_parameter("raw_outputscale", torch.nn.Parameter(torch.zeros(())))
        if self.run_noise:
            self.register_parameter("raw_run", torch.nn.Parameter(torch.zeros(())))
            self.register_constraint("raw_run", Positive())
            self.register_prior(
                "run_prior", GammaPrior(1.1, 2.0, validate_args=False), lambda m: m.run
            )
        self.register_constraint("raw_outputscale", Positive())
        self.register_prior(
            "outputscale_prior",
            GammaPrior(2.0, 1.0, validate_args=False),
            lambda m: m.outputscale,
        )
        self.register_constraint("raw_x_lengthscale", Positive())
        self.register_constraint("raw_t_lengthscale", Positive())
        self.register_constraint("raw_late", Positive())
        self.register_prior(
            "late_prior", GammaPrior(2.0, 2.0, validate_args=False), lambda m: m.late
        )
        x_prior = (
            GammaPrior(3.0, 6.0, validate_args=False)
            if lengthscale_prior == "gamma"
            else LogNormalPrior(
                math.sqrt(2.0) + 0.5 * math.log(max(d, 1)), math.sqrt(3.0), validate_args=False
            )
        )
        self.register_prior("x_lengthscale_prior", x_prior, lambda m: m.x_lengthscale)
        if lengthscale_floor > 0.0:
            # An exponential prior on the inverse squared lengthscale: a soft barrier of
            # ``lengthscale_floor / l^2`` nats against an x lengthscale collapsing to zero.
            self.register_prior(
                "x_inverse_lengthscale_prior",
                GammaPrior(1.0, lengthscale_floor, validate_args=False),
                lambda m: m.x_lengthscale.pow(-2),
            )
        self.register_prior(
            "t_lengthscale_prior",
            GammaPrior(3.0, 6.0, validate_args=False),
            lambda m: m.t_lengthscale,
        )
        self._cache_key: Any = None
        self._cache_value: _Pieces | None = None

    @property
    def x_lengthscale(self) -> torch.Tensor:
        return self.raw_x_lengthscale_constraint.transform(self.raw_x_lengthscale)

    @property
    def t_lengthscale(self) -> torch.Tensor:
        return self.raw_t_lengthscale_constraint.transform(self.raw_t_lengthscale)

    @property
    def late(self) -> torch.Tensor:
        return self.raw_late_constraint.transform(self.raw_late)

    @property
    def outputscale(self) -> torch.Tensor:
        return self.raw_outputscale_constraint.transform(self.raw_outputscale)

    @property
    def run(self) -> torch.Tensor:
        """Variance at the full budget of a run's own late part (0 without ``run_noise``)."""
        if not self.run_noise:
            return torch.zeros((), dtype=self.raw_outputscale.dtype)
        return self.raw_run_constraint.transform(self.raw_run)

    def _sq_dists(self, x1: torch.Tensor, x2: torch.Tensor) -> _Pieces:
        """Per-dimension squared distances (Hamming on categoricals), squared step gaps, the
        products ``w(t) w(t')`` of the late term and (with ``run_noise``) which pairs belong to
        the same run.

        They do not depend on the kernel parameters, so the pair for the training inputs is
        cached and reused at every step of the marginal-likelihood optimisation.
        """
        # The key holds the tensor itself (not its address, which a new tensor may reuse).
        if self._cache_key is not None and self._cache_value is not None:
            cached, version = self._cache_key
            if x1 is cached and x2 is cached and x1._version == version:
                return self._cache_value
        x1, x2 = x1.detach(), x2.detach()
        value: _Pieces = (
            *sq_dists(x1, x2, self.is_cat),
            self._late_products(x1, x2),
            same_run(x1, x2) if self.run_noise else None,
        )
        if x1 is x2:
            self._cache_key, self._cache_value = (x1, x1._version), value
        return value

    def _late_products(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """``w(t) w(t')`` for every pair of rows."""
        w1 = late_weight(x1[..., -1], self.log_span)
        return w1.unsqueeze(-1) * late_weight(x2[..., -1], self.log_span).unsqueeze(-2)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: Any
    ) -> torch.Tensor:
        if diag:
            w = late_weight(x1[..., -1], self.log_span)
            return self.outputscale + (self.late + self.run) * w.pow(2)
        if x1.requires_grad or x2.requires_grad:
            sq, dt2 = sq_dists(x1, x2, self.is_cat)
            ww = self._late_products(x1, x2)
            same = same_run(x1, x2) if self.run_noise else None
        else:
            sq, dt2, ww, same = self._sq_dists(x1, x2)
        return self.matrix(sq, dt2, ww, same)

    def matrix(
        self, sq: torch.Tensor, dt2: torch.Tensor, ww: torch.Tensor, same: torch.Tensor | None
    ) -> torch.Tensor:
        """The kernel matrix from the parameter-free pieces of :meth:`_sq_dists` (``same`` is
        :obj:`None` without ``run_noise``)."""
        K = joint_kernel(
            sq,
            dt2,
            self.x_lengthscale.pow(-2),
            self.t_lengthscale.pow(-2),
            self.outputscale,
            self.late * ww,
        )
        return K if same is None else K + self.run * same * ww


def late_weight(u: torch.Tensor, log_span: float) -> torch.Tensor:
    """``w = (t - t_lo) / (t_hi - t_lo)`` from the GP's step coordinate ``u`` (see ``scale_t``)."""
    if log_span <= 0.0:
        return torch.ones_like(u)
    return torch.expm1(u * log_span) / math.expm1(log_span)


def same_run(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``1`` for pairs of rows with the same configuration (points of one run), else ``0``."""
    return (x1[..., :-1].unsqueeze(-2) == x2[..., :-1].unsqueeze(-3)).all(-1).to(x1.dtype)


def sq_dists(
    x1: torch.Tensor, x2: torch.Tensor, is_cat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension squared distances of x (Hamming on categoricals) and squared step gaps."""
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    dx = diff[..., :-1]
    sq = torch.where(is_cat, (dx != 0).to(dx.dtype), dx.pow(2))
    return sq, diff[..., -1].pow(2)


@dataclass(frozen=True)
class KernelParams:
    """Fixed (detached) kernel hyperparameters in the form :func:`kernel_matrix` uses."""

    cont: torch.Tensor  # column indices of the continuous coordinates, the step included (last)
    weights: torch.Tensor  # 1 / lengthscale of each of those columns
    cat: tuple[int, ...]  # column indices of the categorical coordinates
    cat_weights: tuple[float, ...]  # 1 / lengthscale^2 of each of those
    inv_lt2: float  # 1 / t_lengthscale^2
    outputscale: float
    late: float  # variance of the late term at the full budget
    log_span: float
    run: float = 0.0  # variance of a run's own late part at the full budget

    @classmethod
    def of(cls, kernel: JointKernel) -> KernelParams:
        is_cat = kernel.is_cat
        inv_ls2 = kernel.x_lengthscale.detach().pow(-2)
        inv_lt2 = float(kernel.t_lengthscale.detach().pow(-2))
        cont = torch.cat([torch.nonzero(~is_cat).flatten(), torch.tensor([is_cat.numel()])])
        weights = torch.cat([inv_ls2[~is_cat], torch.tensor([inv_lt2], dtype=inv_ls2.dtype)])
        cat = tuple(torch.nonzero(is_cat).flatten().tolist())
        return cls(
            cont=cont,
            weights=weights.sqrt(),
            cat=cat,
            cat_weights=tuple(float(inv_ls2[c]) for c in cat),
            inv_lt2=inv_lt2,
            outputscale=float(kernel.outputscale.detach()),
            late=float(kernel.late.detach()),
            log_span=kernel.log_span,
            run=float(kernel.run.detach()),
        )

    def variance(self, u: torch.Tensor | float) -> torch.Tensor:
        """Prior variance ``s + (late + run) * w(u)^2`` at step coordinates ``u``."""
        w = late_weight(torch.as_tensor(u, dtype=torch.float64), self.log_span)
        return self.outputscale + (self.late + self.run) * w.pow(2)


def kernel_matrix(X1: torch.Tensor, X2: torch.Tensor, p: KernelParams) -> torch.Tensor:
    """``JointKernel(X1, X2)`` for fixed hyperparameters, differentiable in the inputs.

    Squared distances come from one matrix product on the scaled continuous coordinates
    (``|a|^2 + |b|^2 - 2 a.b``) plus an equality test per categorical column, which avoids the
    ``(n, m, d)`` difference tensor of :func:`sq_dists`.
    """
    A = X1.index_select(-1, p.cont) * p.weights
    B = X2.index_select(-1, p.cont) * p.weights
    sqd = (A.pow(2).sum(-1, keepdim=True) + B.pow(2).sum(-1) - 2.0 * A @ B.T).clamp_min(0.0)
    # The step part is separable: exp(-dt^2 / 2 l_t^2) factors out of the Matern term.
    dt2 = (X1[:, -1:] - X2[:, -1]).pow(2) * p.inv_lt2
    sqx = sqd - dt2
    for c, w in zip(p.cat, p.cat_weights, strict=True):
        sqx = sqx + (X1[:, c : c + 1] != X2[:, c]).to(X1.dtype) * w
    sqx = sqx.clamp_min(0.0)
    r = sqx.clamp_min(1e-36).sqrt()
    matern = (1.0 + _SQRT5 * r + (5.0 / 3.0) * sqx) * torch.exp(-_SQRT5 * r)
    w1 = late_weight(X1[:, -1:], p.log_span)
    w2 = late_weight(X2[:, -1], p.log_span)
    K = matern * (p.outputscale * torch.exp(-0.5 * dt2) + p.late * w1 * w2)
    if p.run > 0.0:
        K = K + p.run * same_run(X1, X2) * w1 * w2
    return K


def joint_kernel(
    sq: torch.Tensor,
    dt2: torch.Tensor,
    inv_ls2: torch.Tensor,
    inv_lt2: torch.Tensor,
    outputscale: torch.Tensor,
    late_ww: torch.Tensor,
) -> torch.Tensor:
    """``Matern52`` over the weighted x distances times ``s * SE(t) + late * w w'``."""
    sqd = sq @ inv_ls2
    r = sqd.clamp_min(1e-36).sqrt()
    matern = (1.0 + _SQRT5 * r + (5.0 / 3.0) * sqd) * torch.exp(-_SQRT5 * r)
    return matern * (outputscale * torch.exp(-0.5 * dt2 * inv_lt2) + late_ww)


class TrendMean(gpytorch.means.Mean):
    """Prior mean ``c + b * t``: longer training usually scores higher, and without a trend the
    posterior at unexplored long budgets would fall back to the average score."""

    def __init__(self) -> None:
        super().__init__()
        self.register_parameter("constant", torch.nn.Parameter(torch.zeros(())))
        self.register_parameter("slope", torch.nn.Parameter(torch.zeros(())))
        self.register_prior(
            "slope_prior", NormalPrior(0.0, 2.0, validate_args=False), lambda m: m.slope
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.constant + self.slope * x[..., -1]


class Compression(gpytorch.Module):
    """The logistic parameters ``(m0, g0)`` as bounded GP hyperparameters with weak priors."""

    def __init__(self, target: str, learn: bool) -> None:
        super().__init__()
        self.target = target
        self.learn = learn and target != "final"
        self.register_parameter("raw_m0", torch.nn.Parameter(torch.zeros(())))
        self.register_parameter("raw_g0", torch.nn.Parameter(torch.zeros(())))
        self.register_constraint("raw_m0", Interval(*_curve.M0_BOUNDS))
        self.register_constraint("raw_g0", Interval(*_curve.G0_BOUNDS))
        if self.learn:
            # Centred on BOIL's defaults. The marginal likelihood of targets that depend on
            # (m0, g0) favours the flattest weighting (it smooths the targets), which put g0 on
            # its lower bound in most fits with sd 0.5; these priors let the data move the
            # weighting only when they say so clearly.
            self.register_prior(
                "m0_prior",
                NormalPrior(_curve.DEFAULT_M0, 0.5, validate_args=False),
                lambda m: m.m0,
            )
            self.register_prior(
                "g0_prior",
                NormalPrior(_curve.DEFAULT_G0, 0.2, validate_args=False),
                lambda m: m.g0,
            )
        self.set(_curve.DEFAULT_M0, _curve.DEFAULT_G0)

    @property
    def m0(self) -> torch.Tensor:
        return self.raw_m0_constraint.transform(self.raw_m0)

    @property
    def g0(self) -> torch.Tensor:
        return self.raw_g0_constraint.transform(self.raw_g0)

    def set(self, m0: float, g0: float) -> None:
        lo, hi = _curve.M0_BOUNDS
        m0 = float(np.clip(m0, lo + 1e-6, hi - 1e-6))
        lo, hi = _curve.G0_BOUNDS
        g0 = float(np.clip(g0, lo + 1e-6, hi - 1e-6))
        with torch.no_grad():
            f64 = torch.float64
            self.raw_m0.copy_(
                self.raw_m0_constraint.inverse_transform(torch.tensor(m0, dtype=f64))
            )
            self.raw_g0.copy_(
                self.raw_g0_constraint.inverse_transform(torch.tensor(g0, dtype=f64))
            )

    def forward(self, curves: _curve.PaddedCurves) -> torch.Tensor:
        return _curve.compress(curves, self.m0, self.g0, self.target)


class JointGP(gpytorch.models.ExactGP):
    """Exact GP with :class:`JointKernel`; the training targets come from :class:`Compression`."""

    def __init__(
        self,
        X: torch.Tensor,
        curves: _curve.PaddedCurves,
        is_categorical: np.ndarray,
        target: str,
        learn_compression: bool,
        log_span: float = 0.0,
        lengthscale_floor: float = 0.0,
        run_noise: bool = False,
        lengthscale_prior: str = "dim_lognormal",
    ) -> None:
        likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_prior=GammaPrior(1.1, 0.05, validate_args=False),
            noise_constraint=GreaterThan(MIN_NOISE),
        )
        super().__init__(X, torch.zeros(X.shape[0], dtype=X.dtype), likelihood)
        self.curves = curves
        self.mean_module = TrendMean()
        self.covar_module = JointKernel(
            is_categorical, log_span, lengthscale_floor, run_noise, lengthscale_prior
        )
        self.compression = Compression(target, learn_compression)
        self._prior_list: list[tuple[Any, Callable[[torch.Tensor], torch.Tensor], Any]] | None = (
            None
        )
        self._trainable_list: list[tuple[str, torch.nn.Parameter]] | None = None
        self.double()
        with torch.no_grad():
            self.likelihood.noise = torch.tensor(1e-3, dtype=torch.float64)
            kernel = self.covar_module
            kernel.raw_outputscale.fill_(
                float(Positive().inverse_transform(torch.tensor(1.0, dtype=torch.float64)))
            )
            kernel.raw_x_lengthscale.fill_(
                float(Positive().inverse_transform(torch.tensor(0.5, dtype=torch.float64)))
            )
            kernel.raw_t_lengthscale.fill_(
                float(Positive().inverse_transform(torch.tensor(0.5, dtype=torch.float64)))
            )
            kernel.raw_late.fill_(
                float(Positive().inverse_transform(torch.tensor(0.5, dtype=torch.float64)))
            )
            if kernel.run_noise:
                kernel.raw_run.fill_(
                    float(Positive().inverse_transform(torch.tensor(0.05, dtype=torch.float64)))
                )
        self.y_mean = 0.0
        self.y_std = 1.0
        self.scores = torch.zeros(X.shape[0], dtype=X.dtype)

    def set_points(self, X: torch.Tensor, curves: _curve.PaddedCurves) -> None:
        """Replace the training points (keeping every hyperparameter), e.g. after augmentation."""
        self.curves = curves
        self.set_train_data(X, torch.zeros(X.shape[0], dtype=X.dtype), strict=False)
        self.scores = torch.zeros(X.shape[0], dtype=X.dtype)

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    def standardised_targets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores = self.compression(self.curves)
        mean = scores.mean()
        std = scores.std() if scores.numel() > 1 else torch.ones((), dtype=scores.dtype)
        std = std.clamp_min(1e-6)
        return (scores - mean) / std, mean, std

    # Parameter (de)serialisation -----------------------------------------------------------

    def _trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        if self._trainable_list is None:  # Walking the module tree is slow; do it once.
            self._trainable_list = [
                (name, p)
                for name, p in self.named_parameters()
                if p.requires_grad
                and (self.compression.learn or not name.startswith("compression"))
            ]
        return self._trainable_list

    def get_flat(self) -> np.ndarray:
        return np.concatenate([p.detach().numpy().ravel() for _, p in self._trainable()])

    def set_flat(self, flat: np.ndarray) -> None:
        offset = 0
        with torch.no_grad():
            for _, p in self._trainable():
                k = p.numel()
                p.copy_(torch.from_numpy(flat[offset : offset + k]).reshape(p.shape))
                offset += k

    def hyperparameters(self) -> dict[str, Any]:
        """Fitted values in natural units (JSON-friendly)."""
        kernel = self.covar_module
        return {
            "m0": float(self.compression.m0.detach()),
            "g0": float(self.compression.g0.detach()),
            "x_lengthscale": [float(v) for v in kernel.x_lengthscale.detach()],
            "t_lengthscale": float(kernel.t_lengthscale.detach()[0]),
            "outputscale": float(kernel.outputscale.detach()),
            "noise": float(self.likelihood.noise.detach()[0]),
            "mean": float(self.mean_module.constant.detach()),
            "slope": float(self.mean_module.slope.detach()),
            "late": float(kernel.late.detach()),
            "run": float(kernel.run.detach()),
        }

    def load_hyperparameters(self, hp: dict[str, Any]) -> None:
        """Set parameters from :meth:`hyperparameters` output (e.g. a stored warm start).

        Raises:
            KeyError: A required key is missing.
            ValueError: A value is not a finite number, or ``x_lengthscale`` does not hold one
                finite number per input dimension (the message names the key). Nothing is
                changed then.
        """

        def scalar(key: str, default: float | None = None) -> float:
            raw = hp[key] if default is None else hp.get(key, default)
            try:
                value = float(raw)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"Hyperparameter {key!r} = {raw!r} is not a number.") from None
            if not math.isfinite(value):
                raise ValueError(f"Hyperparameter {key!r} = {raw!r} is not finite.")
            return value

        kernel = self.covar_module
        raw_xl = hp["x_lengthscale"]
        try:
            xl = torch.as_tensor(raw_xl, dtype=torch.float64).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"Hyperparameter 'x_lengthscale' = {raw_xl!r} is not a list of numbers."
            ) from None
        if xl.numel() != kernel.raw_x_lengthscale.numel():
            raise ValueError(
                f"Hyperparameter 'x_lengthscale' has {xl.numel()} values, expected "
                f"{kernel.raw_x_lengthscale.numel()}."
            )
        if not bool(torch.isfinite(xl).all()):
            raise ValueError(f"Hyperparameter 'x_lengthscale' = {raw_xl!r} is not finite.")
        values = {
            key: scalar(key, default)
            for key, default in [
                ("t_lengthscale", None),
                ("outputscale", None),
                ("noise", None),
                ("mean", None),
                ("slope", 0.0),
                ("late", 0.5),
                ("run", 0.05),
            ]
        }
        m0 = scalar("m0") if self.compression.learn else 0.0
        g0 = scalar("g0") if self.compression.learn else 0.0
        with torch.no_grad():
            kernel.raw_x_lengthscale.copy_(
                kernel.raw_x_lengthscale_constraint.inverse_transform(
                    xl.clamp_min(1e-4).reshape(kernel.raw_x_lengthscale.shape)
                )
            )
            tl = torch.tensor([max(values["t_lengthscale"], 1e-4)], dtype=torch.float64)
            kernel.raw_t_lengthscale.copy_(
                kernel.raw_t_lengthscale_constraint.inverse_transform(tl)
            )
            scale = torch.tensor(max(values["outputscale"], 1e-4), dtype=torch.float64)
            kernel.raw_outputscale.copy_(
                kernel.raw_outputscale_constraint.inverse_transform(scale)
            )
            self.likelihood.noise = torch.tensor(
                max(values["noise"], 2 * MIN_NOISE), dtype=torch.float64
            )
            self.mean_module.constant.fill_(values["mean"])
            self.mean_module.slope.fill_(values["slope"])
            late = torch.tensor(max(values["late"], 1e-4), dtype=torch.float64)
            kernel.raw_late.copy_(kernel.raw_late_constraint.inverse_transform(late))
            if kernel.run_noise:
                run = torch.tensor(max(values["run"], 1e-4), dtype=torch.float64)
                kernel.raw_run.copy_(kernel.raw_run_constraint.inverse_transform(run))
        if self.compression.learn:
            self.compression.set(m0, g0)

    # Fitting ---------------------------------------------------------------------------------

    def neg_log_posterior(self) -> torch.Tensor:
        """``-(log p(y | theta) + log p(theta)) / n`` for the current parameters.

        The same quantity as GPyTorch's ``ExactMarginalLogLikelihood`` plus the registered
        priors, computed with one dense Cholesky factorisation (faster at our sizes).
        """
        y, _, _ = self.standardised_targets()
        X = self.train_inputs[0]
        n = X.shape[0]
        kernel = self.covar_module
        K = kernel.matrix(*kernel._sq_dists(X, X))
        K = K + self.likelihood.noise * torch.eye(n, dtype=X.dtype)
        resid = y - self.mean_module(X)
        mll = _GaussianLogLikelihood.apply(K, resid) - 0.5 * n * _LOG_2PI
        if self._prior_list is None:  # Walking the module tree is slow; the priors do not change.
            self._prior_list = [(m, _log_prior(p), c) for _, m, p, c, _ in self.named_priors()]
        log_prior = sum(
            log_density(closure(module)).sum() for module, log_density, closure in self._prior_list
        )
        return -(mll + log_prior) / n

    def fit(
        self,
        starts: Sequence[dict[str, Any] | None],
        rng: np.random.RandomState,
        n_random_starts: int,
        maxiter: int = 200,
    ) -> float:
        """Maximise the marginal likelihood from each start; keep the best. Returns its loss.

        ``None`` in ``starts`` stands for the default initial values. Random starts perturb the
        defaults (lengthscales, logistic parameters) with ``rng``.
        """
        default = self.get_flat()
        candidates: list[np.ndarray] = []
        for hp in starts:
            self.set_flat(default)
            if hp is not None:
                try:
                    self.load_hyperparameters(hp)
                except (KeyError, TypeError, ValueError):
                    continue
            candidates.append(self.get_flat())
        for _ in range(n_random_starts):
            candidates.append(default + rng.normal(scale=1.0, size=default.size))

        def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
            self.set_flat(flat)
            self.zero_grad()
            loss = self.neg_log_posterior()
            loss.backward()
            grad = np.concatenate(
                [
                    (p.grad if p.grad is not None else torch.zeros_like(p)).numpy().ravel()
                    for _, p in self._trainable()
                ]
            )
            return float(loss.detach()), grad

        if not candidates:
            candidates.append(default)

        def run(start: np.ndarray, iterations: int) -> Any:
            try:
                return scipy.optimize.minimize(
                    loss_and_grad,
                    start,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=[(-12.0, 12.0)] * start.size,
                    options={"maxiter": iterations, "ftol": 1e-7, "gtol": 1e-3},
                )
            except (RuntimeError, ValueError, np.linalg.LinAlgError):  # incl. torch LinAlgError
                return None

        best_flat, best_loss = candidates[0], np.inf
        with gp_settings():
            for start in candidates:
                res = run(start, maxiter)
                if res is not None and np.isfinite(res.fun) and res.fun < best_loss:
                    best_loss, best_flat = float(res.fun), res.x
            if not np.isfinite(best_loss):  # Every start failed: try the defaults once more.
                res = run(default, 100)
                if res is None or not np.isfinite(res.fun):
                    self.set_flat(default)
                    raise FitError(
                        f"every one of {len(candidates) + 1} starts of the GP fit failed"
                    )
                best_loss, best_flat = float(res.fun), res.x
        self.set_flat(best_flat)
        self.finalise()
        return best_loss

    def finalise(self) -> None:
        """Fix the targets at the fitted compression and factorise the training covariance."""
        with torch.no_grad():
            y, mean, std = self.standardised_targets()
            self.scores = self.compression(self.curves).detach()
            self.y_mean, self.y_std = float(mean), float(std)
            self.set_train_data(self.train_inputs[0], y.detach(), strict=False)
            self.refactorise()
        self.eval()

    def refactorise(self) -> None:
        """Cholesky factor of ``K + noise I`` and the weights for the posterior mean."""
        with torch.no_grad():
            X = self.train_inputs[0]
            n = X.shape[0]
            K = self.covar_module(X).to_dense() + self.noise * torch.eye(n, dtype=X.dtype)
            self.chol = _robust_cholesky(K)
            resid = (self.train_targets - self.mean_module(X)).unsqueeze(-1)
            self.alpha = torch.cholesky_solve(resid, self.chol).squeeze(-1)
            # Fixed hyperparameters for :meth:`predict`, which then needs no module calls.
            self._frozen = (
                KernelParams.of(self.covar_module),
                float(self.mean_module.constant),
                float(self.mean_module.slope),
            )

    @property
    def noise(self) -> torch.Tensor:
        return self.likelihood.noise.detach()[0]

    def prior_variance(self, X: torch.Tensor) -> torch.Tensor:
        """``k(x, x)`` of the current kernel (it grows with the step through the late term)."""
        return KernelParams.of(self.covar_module).variance(X[..., -1])

    def covariance(self, X1: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        """``K(X1, X2)`` (default ``X2 = X1``) of the current kernel, without noise."""
        with torch.no_grad():
            return kernel_matrix(X1, X1 if X2 is None else X2, KernelParams.of(self.covar_module))

    def predict(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the latent function at ``X`` (standardised units).

        Differentiable with respect to ``X``; uses the stored Cholesky factor, never an inverse.
        """
        params, constant, slope = self._frozen
        k = kernel_matrix(X, self.train_inputs[0], params)
        mean = constant + slope * X[..., -1] + k @ self.alpha
        v = torch.linalg.solve_triangular(self.chol, k.transpose(-1, -2), upper=False)
        var = params.variance(X[..., -1]) - v.pow(2).sum(-2)
        return mean, var.clamp_min(1e-12)

    def predict_pair(self, X: torch.Tensor, u_final: float) -> tuple[torch.Tensor, ...]:
        """Joint posterior of the latent function at ``(x, u)`` and ``(x, u_final)`` per row.

        Returns:
            ``(mean_final, var_final, var, cov)``: mean and variance at ``(x, u_final)``, variance
            at ``(x, u)`` and the posterior covariance of the two, each ``(m,)``, standardised
            units, differentiable with respect to ``X``.
        """
        params, constant, slope = self._frozen
        X_final = torch.cat([X[:, :-1], torch.full_like(X[:, -1:], u_final)], dim=-1)
        k = kernel_matrix(torch.cat([X, X_final]), self.train_inputs[0], params)
        m = X.shape[0]
        v = torch.linalg.solve_triangular(self.chol, k.transpose(-1, -2), upper=False)
        v_t, v_f = v[:, :m], v[:, m:]
        w = late_weight(X[:, -1], params.log_span)
        w_f = float(late_weight(torch.tensor(u_final, dtype=torch.float64), params.log_span))
        prior_cross = (
            params.outputscale * torch.exp(-0.5 * (X[:, -1] - u_final).pow(2) * params.inv_lt2)
            + (params.late + params.run) * w * w_f
        )
        var = (params.variance(X[:, -1]) - v_t.pow(2).sum(0)).clamp_min(1e-12)
        var_f = (params.variance(u_final) - v_f.pow(2).sum(0)).clamp_min(1e-12)
        cov = prior_cross - (v_t * v_f).sum(0)
        mean_f = constant + slope * u_final + k[m:] @ self.alpha
        return mean_f, var_f, var, cov


def _log_prior(prior: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """``prior.log_prob`` for the Gamma and Normal priors used here, in a few tensor ops.

    The parameters come from the registered GPyTorch priors; only the evaluation is inlined
    (torch.distributions' argument handling costs more than the arithmetic at this size).
    """
    if isinstance(prior, GammaPrior):
        a, b = float(prior.concentration), float(prior.rate)
        const = a * math.log(b) - math.lgamma(a)
        return lambda value: const + (a - 1.0) * value.log() - b * value
    if isinstance(prior, NormalPrior):
        loc, scale = float(prior.loc), float(prior.scale)
        const = -math.log(scale) - 0.5 * _LOG_2PI
        return lambda value: const - 0.5 * ((value - loc) / scale).pow(2)
    return prior.log_prob


class _GaussianLogLikelihood(torch.autograd.Function):
    """``-r^T K^-1 r / 2 - log det(K) / 2`` with the closed-form gradients.

    ``d/dK = (a a^T - K^-1) / 2`` and ``d/dr = -a`` with ``a = K^-1 r``, from one Cholesky factor
    (cheaper than differentiating through the factorisation and the solve).
    """

    @staticmethod
    def forward(ctx: Any, K: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        L = torch.linalg.cholesky(K)
        a = torch.cholesky_solve(r.unsqueeze(-1), L).squeeze(-1)
        ctx.save_for_backward(L, a)
        return -0.5 * (r * a).sum() - L.diagonal().log().sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L, a = ctx.saved_tensors
        grad_K = 0.5 * (torch.outer(a, a) - torch.cholesky_inverse(L))
        return grad * grad_K, -grad * a


def _robust_cholesky(K: torch.Tensor) -> torch.Tensor:
    """Cholesky factor with growing diagonal jitter if ``K`` is numerically not positive."""
    jitter = 0.0
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(K + jitter * torch.eye(K.shape[0], dtype=K.dtype))
        if int(info) == 0:
            return L
        jitter = 1e-9 if jitter == 0.0 else jitter * 10.0
    raise RuntimeError("The GP covariance matrix is not positive definite.")
