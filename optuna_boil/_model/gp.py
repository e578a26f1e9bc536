"""Joint GP over (hyperparameters, training step), fitted together with the curve compression.

Shapes: ``X`` is ``(n, d + 1)``; its first ``d`` columns are the encoded hyperparameters
(:mod:`.search_space`), the last one the scaled step
``u = log(1 + t - t_lo) / log(1 + t_hi - t_lo)``.

Kernel (:func:`kernel`, the only place it is written):
``Matern52(r_x) * (s * exp(-(u - u')^2 / (2 l_t^2)) + late * w(t) w(t'))`` with the ARD distance
``r_x^2 = sum_cont ((x_i - x'_i) / l_i)^2 + sum_cat 1[x_i != x'_i] / l_i^2``, so categorical
choices are compared by equality only; ``w`` is the linear fraction of the step range. The late
term is a part of the score that only long runs reveal: short runs barely constrain it, so until
long runs are observed the posterior at long budgets keeps the prior uncertainty ``late`` instead
of inheriting the certainty of many short runs.

Priors keep lengthscales, signal and noise away from the edges (the x lengthscales have the
dimension-scaled LogNormal prior of Hvarfner et al., 2024, that BoTorch uses); the noise variance
has BoTorch's LogNormal(-4, 1) prior, which keeps the GP from interpolating run-to-run noise (a
noise variance near 0 costs tens of nats), and a floor. Targets are the compressed curve scores
(:mod:`.curve`), standardised; the logistic parameters ``(m0, g0)`` of the compression are GP
hyperparameters too and all of them are fitted by maximising the marginal likelihood plus log
priors, with exact torch gradients and SciPy's L-BFGS-B. :class:`Posterior` answers predictions
from one Cholesky factor. Everything is float64.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
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
NOISE_PRIOR = (-4.0, 1.0)  # (loc, scale) of the noise variance's LogNormal prior, as BoTorch
_SQRT5 = 5.0**0.5
_LOG_2PI = float(np.log(2 * np.pi))
_F64 = torch.float64


class FitError(RuntimeError):
    """The GP could not be fitted: every start of the optimiser failed numerically."""


@dataclass(frozen=True)
class KernelParams:
    """Hyperparameters of :func:`kernel` as tensors (differentiable while fitting).

    Attributes:
        inv_ls: ``1 / l_i`` of each x coordinate, ``(d,)``.
        inv_lt: ``1 / l_t`` of the step coordinate.
        outputscale: ``s``.
        late: Variance of the late term at the full budget.
        cont: Column indices of the continuous x coordinates.
        cat: Column indices of the categorical x coordinates.
        log_span: ``log(1 + t_hi - t_lo)``, to map ``u`` back to ``w``.
    """

    inv_ls: torch.Tensor
    inv_lt: torch.Tensor
    outputscale: torch.Tensor
    late: torch.Tensor
    cont: torch.Tensor
    cat: tuple[int, ...]
    log_span: float

    def detach(self) -> KernelParams:
        return replace(
            self,
            inv_ls=self.inv_ls.detach(),
            inv_lt=self.inv_lt.detach(),
            outputscale=self.outputscale.detach(),
            late=self.late.detach(),
        )


def late_weight(u: torch.Tensor, log_span: float) -> torch.Tensor:
    """``w = (t - t_lo) / (t_hi - t_lo)`` from the GP's step coordinate ``u``."""
    if log_span <= 0.0:
        return torch.ones_like(u)
    return torch.expm1(u * log_span) / math.expm1(log_span)


def kernel(
    X1: torch.Tensor, X2: torch.Tensor, p: KernelParams, diag: bool = False
) -> torch.Tensor:
    """The joint kernel: ``K(X1, X2)`` ``(n, m)``, or ``k(X1[i], X2[i])`` ``(n,)`` with ``diag``.

    Differentiable in the inputs and in the tensors of ``p``. Pairwise squared distances come
    from one matrix product on the scaled continuous coordinates (``|a|^2 + |b|^2 - 2 a.b``)
    plus an equality test per categorical column.
    """
    w1 = late_weight(X1[..., -1], p.log_span)
    if diag and X1 is X2:  # k(x, x): no distance at all
        return p.outputscale + p.late * w1.pow(2)
    inv_ls2 = p.inv_ls.pow(2)
    if diag:
        dx = X1[..., :-1] - X2[..., :-1]
        sqx = (dx.index_select(-1, p.cont).pow(2) * inv_ls2[p.cont]).sum(-1)
        for c in p.cat:
            sqx = sqx + (dx[..., c] != 0).to(dx.dtype) * inv_ls2[c]
        dt2 = (X1[..., -1] - X2[..., -1]).pow(2)
        ww = w1 * late_weight(X2[..., -1], p.log_span)
    else:
        scale = p.inv_ls.index_select(0, p.cont)
        A = X1.index_select(-1, p.cont) * scale
        B = X2.index_select(-1, p.cont) * scale
        sqx = (A.pow(2).sum(-1, keepdim=True) + B.pow(2).sum(-1) - 2.0 * A @ B.T).clamp_min(0.0)
        for c in p.cat:
            sqx = sqx + (X1[:, c : c + 1] != X2[:, c]).to(X1.dtype) * inv_ls2[c]
        dt2 = (X1[:, -1:] - X2[:, -1]).pow(2)
        ww = w1.unsqueeze(-1) * late_weight(X2[:, -1], p.log_span)
    r = sqx.clamp_min(1e-36).sqrt()
    matern = (1.0 + _SQRT5 * r + (5.0 / 3.0) * sqx) * torch.exp(-_SQRT5 * r)
    return matern * (p.outputscale * torch.exp(-0.5 * dt2 * p.inv_lt.pow(2)) + p.late * ww)


class JointKernel(gpytorch.kernels.Kernel):
    """The parameters, constraints and priors of :func:`kernel` as a GPyTorch kernel.

    Args:
        is_categorical: Which x coordinates are categorical.
        log_span: ``log(1 + t_hi - t_lo)``.
    """

    has_lengthscale = False

    def __init__(self, is_categorical: np.ndarray, log_span: float = 0.0) -> None:
        super().__init__()
        d = int(is_categorical.size)
        self.log_span = float(log_span)
        self.register_buffer("is_cat", torch.as_tensor(is_categorical, dtype=torch.bool))
        self._cont = torch.as_tensor(np.flatnonzero(~np.asarray(is_categorical, dtype=bool)))
        self._cat = tuple(int(c) for c in np.flatnonzero(is_categorical))
        for name, shape in [("x_lengthscale", (d,)), ("t_lengthscale", (1,))]:
            self.register_parameter(f"raw_{name}", torch.nn.Parameter(torch.zeros(shape)))
            self.register_constraint(f"raw_{name}", Positive())
        for name in ("late", "outputscale"):
            self.register_parameter(f"raw_{name}", torch.nn.Parameter(torch.zeros(())))
            self.register_constraint(f"raw_{name}", Positive())
        # LogNormal(sqrt(2) + log(d) / 2, sqrt(3)): median 4.1 sqrt(d) for d parameters.
        x_prior = LogNormalPrior(
            math.sqrt(2.0) + 0.5 * math.log(max(d, 1)), math.sqrt(3.0), validate_args=False
        )
        self.register_prior("x_lengthscale_prior", x_prior, lambda m: m.x_lengthscale)
        self.register_prior(
            "t_lengthscale_prior", GammaPrior(3.0, 6.0, validate_args=False), _t_lengthscale
        )
        self.register_prior("late_prior", GammaPrior(2.0, 2.0, validate_args=False), _late)
        self.register_prior(
            "outputscale_prior", GammaPrior(2.0, 1.0, validate_args=False), _outputscale
        )

    def _value(self, name: str) -> torch.Tensor:
        constraint = getattr(self, f"raw_{name}_constraint")
        return constraint.transform(getattr(self, f"raw_{name}"))

    @property
    def x_lengthscale(self) -> torch.Tensor:
        return self._value("x_lengthscale")

    @property
    def t_lengthscale(self) -> torch.Tensor:
        return self._value("t_lengthscale")

    @property
    def late(self) -> torch.Tensor:
        return self._value("late")

    @property
    def outputscale(self) -> torch.Tensor:
        return self._value("outputscale")

    def set_value(self, name: str, value: torch.Tensor | float) -> None:
        """Set the positive parameter ``name`` (e.g. ``"late"``) to ``value``."""
        raw = getattr(self, f"raw_{name}")
        constraint = getattr(self, f"raw_{name}_constraint")
        target = torch.as_tensor(value, dtype=_F64).clamp_min(1e-4).expand(raw.shape)
        with torch.no_grad():
            raw.copy_(constraint.inverse_transform(target))

    def params(self) -> KernelParams:
        return KernelParams(
            inv_ls=self.x_lengthscale.reciprocal(),
            inv_lt=self.t_lengthscale[0].reciprocal(),
            outputscale=self.outputscale,
            late=self.late,
            cont=self._cont,
            cat=self._cat,
            log_span=self.log_span,
        )

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: Any
    ) -> torch.Tensor:
        return kernel(x1, x2, self.params(), diag=diag)


def _t_lengthscale(m: JointKernel) -> torch.Tensor:
    return m.t_lengthscale


def _late(m: JointKernel) -> torch.Tensor:
    return m.late


def _outputscale(m: JointKernel) -> torch.Tensor:
    return m.outputscale


class TrendMean(gpytorch.means.Mean):
    """Prior mean ``c + b * u``: longer training usually scores higher, and without a trend the
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
    """The logistic parameters ``(m0, g0)`` as bounded GP hyperparameters with weak priors.

    With ``learn=False`` they stay at BOIL's defaults (a fixed weighting).
    """

    def __init__(self, learn: bool) -> None:
        super().__init__()
        self.learn = learn
        self.register_parameter("raw_m0", torch.nn.Parameter(torch.zeros(())))
        self.register_parameter("raw_g0", torch.nn.Parameter(torch.zeros(())))
        self.register_constraint("raw_m0", Interval(*_curve.M0_BOUNDS))
        self.register_constraint("raw_g0", Interval(*_curve.G0_BOUNDS))
        if self.learn:
            # Centred on BOIL's defaults. The marginal likelihood of targets that depend on
            # (m0, g0) favours the flattest weighting (it smooths the targets); these priors let
            # the data move the weighting only when they say so clearly.
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
        for name, value, (lo, hi) in [
            ("m0", m0, _curve.M0_BOUNDS),
            ("g0", g0, _curve.G0_BOUNDS),
        ]:
            raw = getattr(self, f"raw_{name}")
            clipped = torch.tensor(float(np.clip(value, lo + 1e-6, hi - 1e-6)), dtype=_F64)
            with torch.no_grad():
                raw.copy_(getattr(self, f"raw_{name}_constraint").inverse_transform(clipped))

    def forward(self, curves: _curve.PaddedCurves) -> torch.Tensor:
        return _curve.compress(curves, self.m0, self.g0)


class Posterior:
    """The GP posterior for fixed hyperparameters, from one Cholesky factor (never an inverse).

    Args:
        X: Training inputs ``(n, d + 1)``.
        y: Standardised training targets ``(n,)``.
        params: Detached kernel hyperparameters.
        constant: Prior mean constant.
        slope: Prior mean slope in ``u``.
        noise: Noise variance.
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        params: KernelParams,
        constant: float,
        slope: float,
        noise: float,
    ) -> None:
        self.X, self.y, self.params = X, y, params
        self.constant, self.slope, self.noise = constant, slope, noise
        K = kernel(X, X, params) + noise * torch.eye(X.shape[0], dtype=X.dtype)
        self.chol = robust_cholesky(K)
        resid = (y - self.prior_mean(X)).unsqueeze(-1)
        self.alpha = torch.cholesky_solve(resid, self.chol).squeeze(-1)

    def prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        return self.constant + self.slope * X[..., -1]

    def prior_variance(self, X: torch.Tensor) -> torch.Tensor:
        """``k(x, x)`` (it grows with the step through the late term)."""
        return kernel(X, X, self.params, diag=True)

    def covariance(self, X1: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        """Prior ``K(X1, X2)`` (default ``X2 = X1``), without noise."""
        return kernel(X1, X1 if X2 is None else X2, self.params)

    def predict(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the latent function at ``X`` (standardised units).

        Differentiable with respect to ``X``.
        """
        k = kernel(X, self.X, self.params)
        mean = self.prior_mean(X) + k @ self.alpha
        v = torch.linalg.solve_triangular(self.chol, k.T, upper=False)
        var = self.prior_variance(X) - v.pow(2).sum(-2)
        return mean, var.clamp_min(1e-12)

    def predict_pair(self, X: torch.Tensor, u_final: float) -> tuple[torch.Tensor, ...]:
        """Joint posterior of the latent function at ``(x, u)`` and ``(x, u_final)`` per row.

        Returns:
            ``(mean_final, var_final, var, cov)``: mean and variance at ``(x, u_final)``, variance
            at ``(x, u)`` and the posterior covariance of the two, each ``(m,)``, standardised
            units, differentiable with respect to ``X``.
        """
        X_final = torch.cat([X[:, :-1], torch.full_like(X[:, -1:], u_final)], dim=-1)
        both = torch.cat([X, X_final])
        k = kernel(both, self.X, self.params)
        m = X.shape[0]
        v = torch.linalg.solve_triangular(self.chol, k.T, upper=False)
        v_t, v_f = v[:, :m], v[:, m:]
        var = (self.prior_variance(X) - v_t.pow(2).sum(0)).clamp_min(1e-12)
        var_f = (self.prior_variance(X_final) - v_f.pow(2).sum(0)).clamp_min(1e-12)
        cov = kernel(X, X_final, self.params, diag=True) - (v_t * v_f).sum(0)
        mean_f = self.prior_mean(X_final) + k[m:] @ self.alpha
        return mean_f, var_f, var, cov

    def conditioned(self, X_new: torch.Tensor) -> Posterior:
        """This posterior with observations at ``X_new`` equal to its own mean there (the
        fantasies of pending runs: they lower the variance, not the mean)."""
        if X_new.shape[0] == 0:
            return self
        with torch.no_grad():
            y_new = self.predict(X_new)[0]
        return Posterior(
            torch.cat([self.X, X_new]),
            torch.cat([self.y, y_new]),
            self.params,
            self.constant,
            self.slope,
            self.noise,
        )


class JointGP(gpytorch.models.ExactGP):
    """Exact GP with :func:`kernel`; the training targets come from :class:`Compression`.

    Args:
        X: Training inputs ``(n, d + 1)``.
        curves: The curve prefix behind each training point.
        is_categorical: Which x coordinates are categorical.
        learn_compression: Fit ``(m0, g0)`` (else BOIL's defaults).
        log_span: ``log(1 + t_hi - t_lo)``.
    """

    def __init__(
        self,
        X: torch.Tensor,
        curves: _curve.PaddedCurves,
        is_categorical: np.ndarray,
        learn_compression: bool = True,
        log_span: float = 0.0,
    ) -> None:
        likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_prior=LogNormalPrior(NOISE_PRIOR[0], NOISE_PRIOR[1], validate_args=False),
            noise_constraint=GreaterThan(MIN_NOISE),
        )
        super().__init__(X, torch.zeros(X.shape[0], dtype=X.dtype), likelihood)
        self.curves = curves
        self.mean_module = TrendMean()
        self.covar_module = JointKernel(is_categorical, log_span)
        self.compression = Compression(learn_compression)
        self._prior_list: list[tuple[Any, Callable[[torch.Tensor], torch.Tensor], Any]] | None = (
            None
        )
        self._trainable_list: list[tuple[str, torch.nn.Parameter]] | None = None
        self.double()
        with torch.no_grad():
            # The prior's mode, exp(loc - scale**2).
            self.likelihood.noise = torch.tensor(
                math.exp(NOISE_PRIOR[0] - NOISE_PRIOR[1] ** 2), dtype=_F64
            )
        for name, value in [
            ("outputscale", 1.0),
            ("x_lengthscale", 0.5),
            ("t_lengthscale", 0.5),
            ("late", 0.5),
        ]:
            self.covar_module.set_value(name, value)
        self.y_mean = 0.0
        self.y_std = 1.0

    def set_points(self, X: torch.Tensor, curves: _curve.PaddedCurves) -> None:
        """Replace the training points (keeping every hyperparameter), e.g. after augmentation."""
        self.curves = curves
        self.set_train_data(X, torch.zeros(X.shape[0], dtype=X.dtype), strict=False)

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    def standardised_targets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores = self.compression(self.curves)
        mean = scores.mean()
        std = scores.std() if scores.numel() > 1 else torch.ones((), dtype=scores.dtype)
        std = std.clamp_min(1e-6)
        return (scores - mean) / std, mean, std

    @property
    def noise(self) -> torch.Tensor:
        return self.likelihood.noise.detach()[0]

    def posterior(self) -> Posterior:
        """The posterior of the current hyperparameters on the current training data."""
        with torch.no_grad():
            y, _, _ = self.standardised_targets()
            return Posterior(
                self.train_inputs[0],
                y,
                self.covar_module.params().detach(),
                float(self.mean_module.constant),
                float(self.mean_module.slope),
                float(self.noise),
            )

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
        kernel_ = self.covar_module
        return {
            "m0": float(self.compression.m0.detach()),
            "g0": float(self.compression.g0.detach()),
            "x_lengthscale": [float(v) for v in kernel_.x_lengthscale.detach()],
            "t_lengthscale": float(kernel_.t_lengthscale.detach()[0]),
            "outputscale": float(kernel_.outputscale.detach()),
            "noise": float(self.noise),
            "mean": float(self.mean_module.constant.detach()),
            "slope": float(self.mean_module.slope.detach()),
            "late": float(kernel_.late.detach()),
        }

    def load_hyperparameters(self, hp: dict[str, Any]) -> None:
        """Set parameters from :meth:`hyperparameters` output (e.g. a stored warm start).

        Raises:
            KeyError: A required key is missing.
            ValueError: A value is not a finite number, or ``x_lengthscale`` does not hold one
                finite number per input dimension (the message names the key). Nothing is
                changed then.
        """
        kernel_ = self.covar_module
        raw_xl = hp["x_lengthscale"]
        try:
            xl = torch.as_tensor(raw_xl, dtype=_F64).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"Hyperparameter 'x_lengthscale' = {raw_xl!r} is not a list of numbers."
            ) from None
        if xl.numel() != kernel_.raw_x_lengthscale.numel():
            raise ValueError(
                f"Hyperparameter 'x_lengthscale' has {xl.numel()} values, expected "
                f"{kernel_.raw_x_lengthscale.numel()}."
            )
        if not bool(torch.isfinite(xl).all()):
            raise ValueError(f"Hyperparameter 'x_lengthscale' = {raw_xl!r} is not finite.")
        required = ["t_lengthscale", "outputscale", "noise", "mean"]
        values = {key: _finite(hp, key) for key in required}
        values["slope"] = _finite(hp, "slope", 0.0)
        values["late"] = _finite(hp, "late", 0.5)
        m0 = _finite(hp, "m0") if self.compression.learn else 0.0
        g0 = _finite(hp, "g0") if self.compression.learn else 0.0
        kernel_.set_value("x_lengthscale", xl)
        for name in ("t_lengthscale", "outputscale", "late"):
            kernel_.set_value(name, values[name])
        with torch.no_grad():
            self.likelihood.noise = torch.tensor(max(values["noise"], 2 * MIN_NOISE), dtype=_F64)
            self.mean_module.constant.fill_(values["mean"])
            self.mean_module.slope.fill_(values["slope"])
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
        K = kernel(X, X, self.covar_module.params())
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
        defaults with ``rng``.

        Raises:
            FitError: Every start, and a last try from the defaults, failed numerically.
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
        if not candidates:
            candidates.append(default)

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
        for start in candidates:
            res = run(start, maxiter)
            if res is not None and np.isfinite(res.fun) and res.fun < best_loss:
                best_loss, best_flat = float(res.fun), res.x
        if not np.isfinite(best_loss):  # Every start failed: try the defaults once more.
            res = run(default, 100)
            if res is None or not np.isfinite(res.fun):
                self.set_flat(default)
                raise FitError(f"every one of {len(candidates) + 1} starts of the GP fit failed")
            best_loss, best_flat = float(res.fun), res.x
        self.set_flat(best_flat)
        with torch.no_grad():
            _, mean, std = self.standardised_targets()
        self.y_mean, self.y_std = float(mean), float(std)
        self.eval()
        return best_loss


def _finite(hp: dict[str, Any], key: str, default: float | None = None) -> float:
    """``hp[key]`` (or ``default`` if given and the key is missing) as a finite float."""
    raw = hp[key] if default is None else hp.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"Hyperparameter {key!r} = {raw!r} is not a number.") from None
    if not math.isfinite(value):
        raise ValueError(f"Hyperparameter {key!r} = {raw!r} is not finite.")
    return value


def _log_prior(prior: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """``prior.log_prob`` for the Gamma, Normal and LogNormal priors used here, in a few tensor
    ops.

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
    if isinstance(prior, LogNormalPrior):
        loc, scale = float(prior.loc), float(prior.scale)
        const = -math.log(scale) - 0.5 * _LOG_2PI
        return lambda value: const - value.log() - 0.5 * ((value.log() - loc) / scale).pow(2)
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


def robust_cholesky(K: torch.Tensor) -> torch.Tensor:
    """Cholesky factor with growing diagonal jitter if ``K`` is numerically not positive.

    Raises:
        torch.linalg.LinAlgError: Still not positive definite with a jitter of 1e-2.
    """
    jitter = 0.0
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(K + jitter * torch.eye(K.shape[0], dtype=K.dtype))
        if int(info) == 0:
            return L
        jitter = 1e-9 if jitter == 0.0 else jitter * 10.0
    raise torch.linalg.LinAlgError(  # type: ignore[attr-defined]
        "The GP covariance matrix is not positive definite."
    )
