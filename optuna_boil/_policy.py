"""What to train next and for how long, from a fitted model's numbers (no torch here).

The sampler asks :meth:`Policy.suggest` for a new trial's configuration and budget: the
acquisition's best new run that repeats no observed run, trained to the full budget when having
that configuration fully trained is worth more (``deliver_new``), or while nothing is fully
trained yet (``first_full``); an observed configuration trained again from the start when its
full training is worth most (``deliver_best``). The pruner asks :meth:`Policy.continuation` when
a trial reaches its budget (train it on to the full budget, or stop) and at the decision points
before it (train on to the budget, or stop). Configurations are compared
parameter by parameter (:meth:`~optuna_boil._model.search_space.SearchSpace.same`: the same
choice or grid point, floats within a thousandth of their range).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optuna_boil._model.fitted import FittedModel


# Below this probability of beating the best fully trained configuration, a run stops at a
# decision point before its budget.
IMPLAUSIBLE = 0.01

# Candidates closer than this (max-norm over the unit cube and the scaled step) count as one
# when parallel workers deciding at the same moment take the best few distinct ones.
_DISTINCT = 0.05


@dataclass(frozen=True)
class Decision:
    """A proposed ``(x, t)`` with what the model expects of it.

    Attributes:
        x: The encoded configuration.
        t: The step budget.
        log_acq: Log value per unit of cost of the choice.
        predicted_score: Predicted compressed score at ``t`` (scaled units).
        predicted_final: Predicted compressed score at ``t_hi`` (scaled units).
        hyperparameters: The fitted GP's hyperparameters.
        retrain_of: The number of the longest observed run of ``x``, when the decision trains
            a configuration seen before again from the start (and the data has trial numbers).
        drawn: ``x`` was drawn at random (random interleaving), not chosen by the acquisition.
    """

    x: np.ndarray
    t: int
    log_acq: float
    predicted_score: float
    predicted_final: float
    hyperparameters: dict[str, Any]
    retrain_of: int | None = None
    drawn: bool = False


@dataclass(frozen=True)
class Continuation:
    """The pruner's decision for a run that reached its budget.

    Attributes:
        extend_to: The new budget, or :obj:`None` to stop the run.
        log_value: Log value of continuing, per unit of cost.
        log_new: Log value of the best new run, per unit of cost.
        reason: Why, in words (stored as the trial's ``boil_stop`` when it stops).
    """

    extend_to: int | None
    log_value: float
    log_new: float
    reason: str


class Policy:
    """Decisions on top of one :class:`~optuna_boil._model.fitted.FittedModel`.

    Args:
        fitted: The fitted model (its pending runs may grow while deciding, see
            :meth:`~optuna_boil._model.fitted.FittedModel.add_pending`).
        resumes: The study's objective continues stopped runs from their checkpoints
            (:func:`~optuna_boil.resume_from`): training a configuration seen before to the full
            budget costs only the steps after its longest stopped run.
    """

    def __init__(self, fitted: FittedModel, resumes: bool = False) -> None:
        self.fitted = fitted
        self.model = fitted.model
        self.data = fitted.data
        self.resumes = resumes

    # Which runs exist --------------------------------------------------------------------------

    def same(self, x: np.ndarray) -> np.ndarray:
        """Mask of the runs whose configuration is the same as ``x`` (:meth:`SearchSpace.same`)."""
        return self.model.space.same(self.data.x, x)

    def observed_until(self, x: np.ndarray, exclude: int | None = None) -> float:
        """Largest step observed or budgeted for configuration ``x`` (or -inf), leaving out the
        run at index ``exclude``; pending runs added while deciding count too."""
        d = self.data
        same = self.same(x)
        if exclude is not None:
            same[exclude] = False
        until = -np.inf
        for i in np.flatnonzero(same):
            if d.steps[i].size:
                until = max(until, float(d.steps[i][-1]))
            if d.running[i] and np.isfinite(d.budgets[i]):
                until = max(until, float(d.budgets[i]))
        pending = self.fitted.extra_pending
        if pending:
            X = np.array([px for px, _ in pending])
            for k in np.flatnonzero(self.model.space.same(X, x)):
                until = max(until, pending[k][1])
        return until

    def earlier_run(self, x: np.ndarray) -> int | None:
        """Number of the longest observed run of configuration ``x`` (:obj:`None` if there is
        none, or the data has no trial numbers); in a study that resumes runs, the longest
        stopped one if there is one (:meth:`_stopped_runs`), the run to continue."""
        if len(self.data.numbers) != len(self.data):
            return None
        same = self.same(x)
        if self.resumes and np.any(same & (stopped := self._stopped_runs())):
            same &= stopped
        lengths = np.where(same, [s.size for s in self.data.steps], -1)
        i = int(np.argmax(lengths))
        return int(self.data.numbers[i]) if lengths[i] > 0 else None

    def needs_full_run(self, exclude: int | None = None) -> bool:
        """Whether the next new run must be a full one (``first_full``): no configuration is
        fully trained, and no running or pending run (but the one at index ``exclude``) has
        ``t_hi`` as its budget."""
        if not self.model.config.first_full or self.fitted.fully_trained().size:
            return False
        d, t_hi = self.data, float(self.model.t_hi)
        full_budget = d.running.astype(bool) & (np.nan_to_num(d.budgets) >= t_hi)
        if exclude is not None:
            full_budget[exclude] = False
        if np.any(full_budget):
            return False
        return not any(budget >= t_hi for _, budget in self.fitted.extra_pending)

    def _row(self, x: np.ndarray, t: float) -> np.ndarray:
        return np.append(x, self.model.scale_t(t))

    # New runs ----------------------------------------------------------------------------------

    def suggest(
        self,
        rng: np.random.RandomState,
        fixed_t: int | None = None,
        skip: int = 0,
        comparison: bool = False,
        explore: bool = False,
    ) -> Decision:
        """The next ``(x, t)``: the acquisition's best run that repeats no observed run.

        With ``deliver_new`` the chosen ``x`` is trained to ``t_hi`` from the start when having
        it fully trained is worth more per unit of cost than the budget the acquisition chose
        for it (and, with ``first_full``, while nothing is fully trained); with
        ``deliver_best`` the observed configuration whose full training is worth most replaces
        it when that is worth more still.

        Args:
            rng: Random state of the search.
            fixed_t: Choose only ``x``, at this step budget.
            skip: Leave out the ``skip`` best mutually distinct candidates (those are taken by
                workers that are deciding at the same moment and cannot be seen yet).
            comparison: The best new run is only compared with continuing a run (a decision
                point): ``first_full`` does not apply.
            explore: Draw the configuration at random (a configuration not observed), with
                the budget the acquisition gives it (``random_fraction``); ``deliver_best``
                does not apply. Not while the study needs its first full training
                (:meth:`needs_full_run`): that one is the model's best guess.
        """
        needs_full = not comparison and self.needs_full_run()
        explore = explore and not comparison and not needs_full
        if explore:
            x = self._unobserved(rng, self.model.t_new_lo)
            _, T, F = self.fitted.search(rng, fixed_t=fixed_t, fixed_x=x)
            chosen: tuple[np.ndarray, int, float] | None = (x, int(T[0]), float(F[0]))
        else:
            X, T, F = self.fitted.search(rng, fixed_t=fixed_t)
            chosen = self._first_new(X, T, F, skip)
        if chosen is None:
            chosen = self._fallback(rng, fixed_t)
        x, t, value = chosen
        cfg, t_hi = self.model.config, self.model.t_hi
        if cfg.deliver_new and fixed_t is None:
            delivery = float(self.fitted.delivery(x)[0])
            if delivery > value or needs_full:
                t, value = t_hi, delivery
            best = self._best_delivery(skip) if cfg.deliver_best and not explore else None
            if best is not None and best[1] > value:
                x, t, value = best[0], t_hi, best[1]
        return self.decision(x, t, value, self.earlier_run(x), drawn=explore)

    def _first_new(
        self, X: np.ndarray, T: np.ndarray, F: np.ndarray, skip: int
    ) -> tuple[np.ndarray, int, float] | None:
        """The first candidate that trains its configuration further than any run did, after
        the ``skip`` best mutually distinct ones."""
        taken: list[np.ndarray] = []
        for x, t, value in zip(X, T, F, strict=True):
            if t <= self.observed_until(x):
                continue
            row = self._row(x, t)
            if any(np.max(np.abs(row - other)) < _DISTINCT for other in taken):
                continue
            if len(taken) < skip:
                taken.append(row)
                continue
            return x, int(t), float(value)
        return None

    def _fallback(
        self, rng: np.random.RandomState, fixed_t: int | None
    ) -> tuple[np.ndarray, int, float]:
        """Every candidate of the search was observed: a random configuration that was not, or
        (a small space, every configuration trained that far) the recommended one again."""
        t = self.model.t_hi if fixed_t is None else fixed_t
        x = self._unobserved(rng, t)
        return x, int(t), self.fitted.acquisition(x, t)

    def _unobserved(self, rng: np.random.RandomState, t: float) -> np.ndarray:
        """A random configuration not observed up to step ``t`` (in a small space where every
        configuration was, the recommended one)."""
        space = self.model.space
        draws = space.round(space.sample(64, rng))
        fresh = [x for x in draws if t > self.observed_until(x)]
        return fresh[0] if fresh else self.data.x[self.recommend()[0]]

    def _best_delivery(self, skip: int = 0) -> tuple[np.ndarray, float] | None:
        """The observed configuration whose full training is worth most per unit of cost, not
        trained fully yet nor running, after the ``skip`` best mutually distinct ones (taken by
        workers deciding at the same moment); :obj:`None` if there is none."""
        seen = np.array([s.size > 0 for s in self.data.steps], dtype=bool)
        X = np.unique(self.data.x[seen], axis=0)
        if not len(X):
            return None
        if self.resumes:
            f = np.array([self.fitted.delivery(x, start=self._resumes_at(x))[0] for x in X])
        else:
            f = self.fitted.delivery(X)
        order = np.argsort(-f, kind="stable")
        running = self.data.running.astype(bool)
        t_hi = float(self.model.t_hi)
        taken: list[np.ndarray] = []
        for x, value in zip(X[order], f[order], strict=True):
            # A configuration with a running trial is left to that trial's own decision point,
            # where training it on costs less than starting again.
            if t_hi <= self.observed_until(x) or np.any(self.same(x) & running):
                continue
            if any(np.max(np.abs(x - other)) < _DISTINCT for other in taken):
                continue
            if len(taken) < skip:
                taken.append(x)
                continue
            return x, float(value)
        return None

    def _resumes_at(self, x: np.ndarray) -> float | None:
        """The step from which configuration ``x`` would be continued: the last step of its
        longest stopped run (neither running nor failed), or :obj:`None`."""
        d = self.data
        runs = np.flatnonzero(self.same(x) & self._stopped_runs())
        last = [float(d.steps[i][-1]) for i in runs if d.steps[i].size]
        return max(last) if last else None

    def _stopped_runs(self) -> np.ndarray:
        """Mask of the runs that stopped (neither running nor failed): those can be continued."""
        d = self.data
        failed = d.failed if d.failed.size == len(d) else np.zeros(len(d), dtype=bool)
        return ~d.running.astype(bool) & ~failed

    def decision(
        self,
        x: np.ndarray,
        t: float,
        log_acq: float,
        retrain_of: int | None = None,
        drawn: bool = False,
    ) -> Decision:
        """A :class:`Decision` for ``(x, t)`` with the model's predictions."""
        t_hi = self.model.t_hi
        mean, _ = self.fitted.predict(np.array([x, x]), np.array([t, t_hi], dtype=np.float64))
        return Decision(
            x=np.array(x, dtype=np.float64),
            t=int(t),
            log_acq=float(log_acq),
            predicted_score=float(mean[0]),
            predicted_final=float(mean[1]),
            hyperparameters=self.fitted.hyperparameters(),
            retrain_of=retrain_of,
            drawn=drawn,
        )

    def budget_for(self, x: np.ndarray, rng: np.random.RandomState) -> Decision:
        """Best budget for a given configuration ``x`` (for runs of other samplers)."""
        _, T, F = self.fitted.search(rng, fixed_x=x)
        return self.decision(x, int(T[0]), float(F[0]))

    # Runs that reached their budget ------------------------------------------------------------

    def continuation(
        self, index: int, step: float, rng: np.random.RandomState, budget: float | None = None
    ) -> Continuation:
        """Whether run ``index``, at ``step``, trains on.

        At its budget (``budget`` :obj:`None` or reached) the run trains on to the full budget
        or stops. Going on costs only the remaining steps, and its value is that of *having*
        the configuration fully trained
        (:meth:`~optuna_boil._model.fitted.FittedModel.delivery`), compared with the best *new*
        run under the same posterior: this is what makes the best configurations end COMPLETE.
        At a decision point before its budget the run keeps its budget unless beating the best
        fully trained configuration has become implausible (:meth:`_review`): a failing run
        stops whatever budget it was given, a plausible one is not second-guessed. At a step
        that the study's curves do not show to predict the end, either stop needs stronger
        evidence, by the factor ``e**margin``
        (:meth:`~optuna_boil._model.fidelity.Belief.margin`).
        """
        t_hi = self.model.t_hi
        if step >= t_hi:
            return Continuation(None, -np.inf, np.inf, "fully trained")
        x = self.data.x[index]
        if self.observed_until(x, exclude=index) >= t_hi:
            return Continuation(
                None, -np.inf, -np.inf, "another trial trains this configuration fully"
            )
        self.fitted.drop_pending(index)
        margin = self.model.belief.margin(step)
        if budget is not None and step < budget:
            return self._review(index, step, int(budget), margin)
        value = float(self.fitted.delivery(x, start=step)[0])
        new = self.suggest(rng, comparison=True).log_acq
        if value + margin < new:
            why = "a new run is worth more"
            if margin > 0:
                why += f" (by a factor above {np.exp(margin):.1f}: step {step:g} predicts little)"
            return Continuation(None, value, new, why)
        return Continuation(int(t_hi), value, new, "train to the full budget")

    def _review(self, index: int, step: float, budget: int, margin: float) -> Continuation:
        """A decision point before the run's budget: the run keeps its budget unless beating the
        best fully trained configuration has become implausible (probability below
        :data:`IMPLAUSIBLE`, divided by ``e**margin`` at a step that predicts little)."""
        if self.needs_full_run(exclude=index):
            return Continuation(budget, np.inf, -np.inf, "the study's first full training")
        log_p = float(self.fitted.log_beats_delivered(self.data.x[index])[0])
        if log_p < np.log(IMPLAUSIBLE) - margin:
            why = (
                f"beating the best fully trained configuration is implausible "
                f"(probability {np.exp(log_p):.2g})"
            )
            return Continuation(None, log_p, -np.inf, why)
        return Continuation(budget, log_p, -np.inf, "continue to the budget")

    # What the user gets ------------------------------------------------------------------------

    def recommend(self) -> tuple[int, float, float]:
        """The configuration in the GP with the best lower confidence bound at ``t_hi``.

        Configurations trained to ``t_hi`` are preferred: only when there is none are the others
        considered. The predicted value is clipped to the range of values observed.

        Returns:
            ``(index into data, predicted value at t_hi, the standard deviation of the
            predicted score)``, in the oriented metric's units
            (:meth:`~optuna_boil._model.fitted.FittedModel.final_value`).
        """
        f = self.fitted
        idx = np.array(sorted({i for i, _ in f.points}))
        full = f.fully_trained()
        if np.isin(idx, full).any():
            idx = idx[np.isin(idx, full)]
        mean, std = f.predict(self.data.x[idx], np.full(len(idx), self.model.t_hi))
        # A conservative choice: the best lower confidence bound, so that a configuration seen
        # only briefly does not win on an optimistic extrapolation.
        k = int(np.argmax(mean - std))
        value = float(f.final_value(mean[k]))
        return int(idx[k]), value, float(std[k] * f.span)
