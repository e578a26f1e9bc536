"""optuna-dashboard integration: a study-level figure of what the model learned."""

from __future__ import annotations

import importlib.util

import numpy as np
import optuna
from optuna.study import Study

from optuna_boil import _context
from optuna_boil._helpers import fit_study
from optuna_boil._model import curve as _curve
from optuna_boil._model.fitted import FittedModel
from optuna_boil._policy import Policy


GRAPH_ID = "boil-model"
_N_STEPS = 200  # steps at which the figure shows the prediction


def dashboard_available() -> bool:
    """Whether optuna-dashboard and plotly can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in ("optuna_dashboard", "plotly"))


def publish_to_dashboard(study: Study) -> bool:
    """Save a figure of the fitted model to the study, for optuna-dashboard's "Analytics" page.

    Left: the logistic weighting of the curve compression over the budget, as fitted and at
    BOIL's defaults. Right: the recommended configuration's observed curve and the model's
    predicted score (mean and two standard deviations) over the whole budget. Saving again
    replaces the figure. Needs ``optuna-dashboard`` and ``plotly``.

    Args:
        study: A study tuned with :class:`~optuna_boil.BOILSampler`.

    Returns:
        Whether a figure was saved (:obj:`False` without the optional packages or data).
    """
    if not dashboard_available():
        return False

    fitted = fit_study(study)
    if fitted is None:
        return False
    with _context.FIT_LOCK, _context.limit_threads():
        return _save(study, fitted)


def plot_steps(t_lo: int, t_hi: int, n: int = _N_STEPS) -> np.ndarray:
    """At most about ``n`` integer steps from ``t_lo`` to ``t_hi`` (both included): half evenly
    spaced, half geometrically (dense early, where curves change fastest)."""
    if t_hi - t_lo + 1 <= n:
        return np.arange(t_lo, t_hi + 1, dtype=np.float64)
    linear = np.linspace(t_lo, t_hi, n // 2)
    geometric = t_lo - 1 + np.geomspace(1, t_hi - t_lo + 1, n - n // 2)
    steps = np.unique(np.round(np.concatenate([linear, geometric])))
    return np.clip(steps, t_lo, t_hi)


def _save(study: Study, fitted: FittedModel) -> bool:
    import optuna_dashboard
    from plotly.subplots import make_subplots

    model = fitted.model
    hp = fitted.hyperparameters()
    steps = plot_steps(model.t_lo, model.t_hi)
    z = _curve.step_to_grid(steps, model.t_lo, model.t_hi)
    index, _, _ = Policy(fitted).recommend()
    x = fitted.data.x[index]
    mean, std = fitted.predict(np.tile(x, (steps.size, 1)), steps.astype(float))
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else 1.0
    to_user = lambda v: sign * fitted.to_metric(v)  # noqa: E731
    number = int(fitted.data.numbers[index])
    observed = fitted.data

    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Curve weighting", f"Recommended trial {number}"),
    )
    figure.add_scatter(
        x=steps,
        y=_curve.logistic_weights(z, hp["m0"], hp["g0"]),
        name="fitted",
        hovertext=f"m0={hp['m0']:.2f}, g0={hp['g0']:.2f}",
        row=1,
        col=1,
    )
    figure.add_scatter(
        x=steps,
        y=_curve.logistic_weights(z, _curve.DEFAULT_M0, _curve.DEFAULT_G0),
        name="BOIL default",
        line={"dash": "dot"},
        row=1,
        col=1,
    )
    figure.add_scatter(x=steps, y=to_user(mean), name="predicted score", row=1, col=2)
    figure.add_scatter(
        x=np.concatenate([steps, steps[::-1]]),
        y=np.concatenate([to_user(mean + 2 * std), to_user(mean - 2 * std)[::-1]]),
        fill="toself",
        line={"width": 0},
        opacity=0.3,
        name="±2 std",
        row=1,
        col=2,
    )
    figure.add_scatter(
        x=observed.steps[index],
        y=sign * observed.values[index],
        mode="markers",
        name="observed",
        row=1,
        col=2,
    )
    figure.update_xaxes(title_text="step")
    figure.update_layout(title="BOIL model")
    optuna_dashboard.save_plotly_graph_object(study, figure, graph_object_id=GRAPH_ID)
    return True
