from __future__ import annotations

from collections.abc import Sequence
import hashlib
import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import threadpoolctl
import torch

from optuna_boil import _observations
from optuna_boil import _storage
from optuna_boil._model import curve as _curve
from optuna_boil._model.model import ACQUISITIONS
from optuna_boil._model.model import BOILModel
from optuna_boil._model.model import Decision
from optuna_boil._model.model import FittedModel
from optuna_boil._model.model import ModelConfig
from optuna_boil._model.search_space import SearchSpace


_logger = optuna.logging.get_logger(__name__)
# GPyTorch settings and torch's thread count are process-global: one fit at a time.
_FIT_LOCK = threading.Lock()
_COST_MODES = ("steps", "wallclock")


def derive_seed(*parts: object) -> int:
    """A 32-bit seed from the given parts (stable across processes and platforms)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class BOILSampler(BaseSampler):
    """Sampler based on BOIL, Bayesian Optimization for Iterative Learning.

    BOIL (`Nguyen et al., NeurIPS 2020 <https://arxiv.org/abs/1909.09593>`__) uses the whole
    learning curve that a trial reports with :meth:`~optuna.trial.Trial.report`. Each curve is
    compressed into one score by a learned logistic weighting that rewards late, stable progress;
    one Gaussian process over (hyperparameters, training step) is fitted to the scores, together
    with the weighting; a few points of every curve are added to the GP where it is most
    uncertain (selective augmentation, guarded by the covariance condition number); and the next
    configuration *and how long to train it* are chosen per unit of training cost: the
    configuration by the expected improvement of its score at the full budget, the budget by how
    much a run of that length would tell about it (see ``acquisition``).

    Use it with :class:`~optuna_boil.BOILPruner`, which enforces the chosen budgets and decides
    whether a trial that reached its budget continues. With any other pruner the sampler still
    learns from every curve, but it can no longer choose budgets: it then proposes
    configurations for the full budget.

    .. note::
        How trials are used: COMPLETE, PRUNED and FAIL trials contribute their whole curve
        (a PRUNED trial contributes its curve, not just its last value); RUNNING trials contribute
        their partial curve and count as pending at their budget, so parallel workers do not pick
        the same point; a FAIL trial retried by Optuna's heartbeat callback is not counted twice;
        WAITING trials are ignored. A COMPLETE trial that reported nothing counts as one point at
        the full budget, so a study without reports is plain GP-based optimisation.

    .. note::
        Non-finite reports: NaN and the bad infinity (``-inf`` when maximising, ``+inf`` when
        minimising) count as the worst finite value observed in the study; the good infinity as
        the best. Nothing is dropped. The pruner uses the same data.

    .. note::
        Reproducibility: with a fixed ``seed`` and one worker, decisions are identical from run to
        run, and a fresh sampler on the same storage makes the same decision (all state lives in
        the storage). Parallel workers are not reproducible, as with every Optuna sampler.

    Args:
        seed:
            Seed for the random start-up trials and the acquisition maximiser.
        n_startup_trials:
            Number of trials with data before the model is used; until then configurations are
            drawn at random (with per-trial seeds) and trained for ``startup_budget`` steps.
        startup_budget:
            Budget of the start-up trials. Defaults to ``min_resource`` plus a sixteenth of the
            budget range (4 steps for steps 1 to 52).
        independent_sampler:
            Sampler for parameters outside the relative search space. Defaults to a
            :class:`~optuna.samplers.RandomSampler` seeded per trial.
        target:
            What the GP models: ``"logistic"`` (late-weighted average of the curve so far, the
            default), ``"paper"`` (BOIL's score as published) or ``"final"`` (last value).
        acquisition:
            How ``(x, t)`` is chosen. ``"final"`` (default): expected improvement of the score at
            the full budget, times the posterior correlation between the scores at ``t`` and at
            the full budget, times a discount for runs whose outcome noise would hide, per unit
            of cost (augmented EI, Huang et al. 2006). ``"budget"``: BOIL's expected improvement
            of the score at ``t`` per unit of cost, which keeps choosing the shortest budget when
            early reports do not depend on the hyperparameters (RL with a warm-up).
        learn_compression:
            Learn the logistic weighting's midpoint and growth jointly with the GP by marginal
            likelihood (exact gradients, priors centred on BOIL's defaults). The default
            :obj:`False` keeps BOIL's ``(0, 1)``, which did better on the LCBench development
            tasks (the two are barely identified by the likelihood).
        augmentation:
            Add selected points of each curve to the GP.
        cost_aware:
            Divide expected improvement by the training cost of ``(x, t)``.
        cost:
            ``"steps"`` (default): cost is counted in steps, the unit budgets are given in.
            ``"wallclock"``: seconds between a trial's start and completion. Costs reported with
            :func:`~optuna_boil.report_cost` override both.
        max_gp_points:
            Cap on the GP's training size (trials plus augmented points); beyond it, the running
            trials, the best third and an even spread of the others are kept.
        stale_after:
            Seconds after which a RUNNING trial without any sign of life (start, or a pruner
            call) stops counting as pending, for workers that died without Optuna's heartbeat.
            Its curve is still used. :obj:`None` keeps every RUNNING trial pending.
        dashboard_every:
            When optuna-dashboard and plotly are installed, save a figure of the fitted model
            (:func:`~optuna_boil.publish_to_dashboard`) after every this many trials;
            :obj:`None` never does.
        warn_independent_sampling:
            Warn when a parameter is sampled by the independent sampler after start-up.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 8,
        startup_budget: int | None = None,
        independent_sampler: BaseSampler | None = None,
        target: str = "logistic",
        acquisition: str = "final",
        learn_compression: bool = False,
        augmentation: bool = True,
        cost_aware: bool = True,
        cost: str = "steps",
        max_gp_points: int = 200,
        stale_after: float | None = 3600.0,
        dashboard_every: int | None = 10,
        warn_independent_sampling: bool = True,
    ) -> None:
        if not isinstance(n_startup_trials, int) or n_startup_trials < 1:
            raise ValueError(
                f"`n_startup_trials` must be an integer >= 1, got {n_startup_trials!r}."
            )
        if startup_budget is not None and (
            not isinstance(startup_budget, int) or startup_budget < 0
        ):
            raise ValueError(
                f"`startup_budget` must be a non-negative integer, got {startup_budget!r}."
            )
        if target not in _curve.TARGETS:
            raise ValueError(f"`target` must be one of {_curve.TARGETS}, got {target!r}.")
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"`acquisition` must be one of {ACQUISITIONS}, got {acquisition!r}.")
        if cost not in _COST_MODES:
            raise ValueError(f"`cost` must be one of {_COST_MODES}, got {cost!r}.")
        if stale_after is not None and not stale_after > 0:
            raise ValueError(f"`stale_after` must be positive or None, got {stale_after!r}.")
        if dashboard_every is not None and (
            not isinstance(dashboard_every, int) or dashboard_every < 1
        ):
            raise ValueError(f"`dashboard_every` must be None or >= 1, got {dashboard_every!r}.")
        if not isinstance(max_gp_points, int) or max_gp_points < 10:
            raise ValueError(f"`max_gp_points` must be an integer >= 10, got {max_gp_points!r}.")
        self._seed = seed if seed is not None else _random_seed()
        self._n_startup_trials = n_startup_trials
        self._startup_budget = startup_budget
        self._independent_sampler = independent_sampler
        self._cost = cost
        self._stale_after = stale_after
        self._dashboard_every = dashboard_every
        self._warn_independent_sampling = warn_independent_sampling
        self._config = ModelConfig(
            target=target,
            acquisition=acquisition,
            learn_compression=learn_compression,
            augmentation=augmentation,
            cost_aware=cost_aware,
            max_gp_points=max_gp_points,
        )
        self._thread = threading.local()
        self._warned_no_pruner = False

    def reseed_rng(self) -> None:
        self._seed = _random_seed()
        if self._independent_sampler is not None:
            self._independent_sampler.reseed_rng()

    # Search space -----------------------------------------------------------------------------

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._raise_error_if_multi_objective(study)
        # The trials read here are reused by ``sample_relative`` for the same trial, so that a
        # decision reads the storage once.
        trials = self._trials(study)
        self._thread.trials = (trial.number, trials)
        space = optuna.search_space.intersection_search_space(trials, include_pruned=True)
        return {name: dist for name, dist in space.items() if not dist.single()}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
        if self._warn_independent_sampling and self._past_startup(study, trial):
            _logger.warning(
                f"The parameter '{param_name}' in trial#{trial.number} is sampled independently "
                "instead of by BOILSampler (it is not in the relative search space)."
            )
        sampler = self._independent_sampler or RandomSampler(
            seed=derive_seed(self._seed, trial.number, param_name)
        )
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if self._independent_sampler is not None:
            self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if self._independent_sampler is not None:
            self._independent_sampler.after_trial(study, trial, state, values)
        every = self._dashboard_every
        if every and (trial.number + 1) % every == 0 and not study._is_multi_objective():
            from optuna_boil._dashboard import dashboard_available
            from optuna_boil._dashboard import publish_to_dashboard

            if dashboard_available():
                try:
                    publish_to_dashboard(study)
                except Exception as e:  # A figure must never break the study.
                    _logger.warning(f"Could not save the BOIL figure for optuna-dashboard: {e}")

    # Decisions --------------------------------------------------------------------------------

    def _trials(self, study: Study) -> list[FrozenTrial]:
        return study._get_trials(deepcopy=False, states=None, use_cache=False)

    def _n_with_data(self, trials: Sequence[FrozenTrial], exclude: int | None) -> int:
        return sum(
            1
            for t in trials
            if t.number != exclude
            and t.state in _observations.USED_STATES
            and (t.intermediate_values or t.state == TrialState.COMPLETE)
        )

    def _past_startup(self, study: Study, trial: FrozenTrial) -> bool:
        trials = self._trials(study)
        return self._n_with_data(trials, trial.number) >= self._n_startup_trials

    def _resources(
        self, study: Study, trials: Sequence[FrozenTrial]
    ) -> tuple[int, int | None, bool]:
        """``(t_lo, t_hi, budgets enforced)`` from the pruner, or from the data."""
        from optuna_boil._pruner import BOILPruner

        pruner = study.pruner
        if isinstance(pruner, BOILPruner):
            return pruner._min_resource, pruner._resolve_max(trials), True
        steps = [t.last_step for t in trials if t.last_step is not None]
        if not steps:  # No reports at all: plain GP-based optimisation at one fidelity.
            return 0, 0, False
        first = min(min(t.intermediate_values) for t in trials if t.intermediate_values)
        return first, max(steps), False

    def startup_budget(self, t_lo: int, t_hi: int | None) -> int | None:
        if t_hi is None:
            return None
        if self._startup_budget is not None:
            return int(min(max(self._startup_budget, t_lo), t_hi))
        return int(min(t_lo + max((t_hi - t_lo) // 16, 0), t_hi))

    def fit(
        self,
        study: Study,
        trials: Sequence[FrozenTrial],
        space: SearchSpace,
        t_lo: int,
        t_hi: int,
        exclude_number: int | None,
    ) -> tuple[FittedModel, list[FrozenTrial]] | None:
        """Fit the model to the study's trials (read once by the caller); ``None`` if no data."""
        data = _observations.build(
            trials,
            space,
            study.direction,
            t_hi,
            self._cost,
            exclude_number=exclude_number,
            stale_after=self._stale_after,
        )
        if not any(s.size for s in data.steps):
            return None
        user_costs = any(_storage.COST in t.system_attrs for t in trials)
        model = BOILModel(
            space,
            t_lo,
            t_hi,
            self._config,
            cost_in_steps=self._cost == "steps" and not user_costs,
            t_new_lo=self.startup_budget(t_lo, t_hi),
        )
        rng = np.random.RandomState(derive_seed(self._seed, "fit", exclude_number, len(data)))
        warm = _storage.latest_fit(list(trials))
        if warm is not None and len(warm.get("x_lengthscale", [])) != space.dim:
            warm = None
        with _FIT_LOCK, _limit_threads():
            fitted = model.fit(data, rng, warm_start=warm)
        return fitted, list(trials)

    def sample_relative(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        cached = getattr(self._thread, "trials", None)
        self._thread.trials = None
        if cached is not None and cached[0] == trial.number:
            trials = cached[1]
        else:
            trials = self._trials(study)
        t_lo, t_hi, enforced = self._resources(study, trials)
        if not enforced and not self._warned_no_pruner:
            self._warned_no_pruner = True
            _logger.info(
                "BOILSampler is used without BOILPruner: it learns from every reported curve but "
                "cannot choose how long each trial trains. Add "
                "`pruner=optuna_boil.BOILPruner(min_resource=..., max_resource=...)` to let BOIL "
                "choose training budgets."
            )
        if not search_space or self._n_with_data(trials, trial.number) < self._n_startup_trials:
            budget = self.startup_budget(t_lo, t_hi) if enforced else None
            self._publish(study, trial, None, budget, None, initial=True)
            return {}
        assert t_hi is not None
        space = SearchSpace(search_space)
        result = self.fit(study, trials, space, t_lo, t_hi, exclude_number=trial.number)
        if result is None:
            self._publish(study, trial, None, self.startup_budget(t_lo, t_hi), None, initial=True)
            return {}
        fitted, _ = result
        # Workers that started a trial just before this one may be deciding at this moment,
        # unseen: on the same data they would pick the same point. Each such trial takes one of
        # the best distinct candidates (in trial-number order), and those that have published
        # their choice by the end of this decision are conditioned on as pending.
        in_flight = {
            t.number
            for t in trials
            if t.state == TrialState.RUNNING
            and t.number < trial.number
            and _storage.PARAMS not in t.system_attrs
            and not t.intermediate_values
        }
        rng = np.random.RandomState(derive_seed(self._seed, "suggest", trial.number))
        with _FIT_LOCK, _limit_threads():
            decision = fitted.suggest(rng, fixed_t=None if enforced else t_hi, skip=len(in_flight))
        publish = lambda d: self._publish(  # noqa: E731
            study, trial, space.decode(d.x), d.t if enforced else None, (fitted, d), initial=True
        )
        publish(decision)
        # Those concurrent workers publish their choices while this one decides. Re-read them
        # (at most twice, and only when there were any) and decide again, with their choices as
        # pending runs, if one of them took the same configuration and budget.
        resolved: set[int] = set()
        for _ in range(2 if in_flight else 0):
            clashes = []
            for t in self._trials(study):
                chosen = t.system_attrs.get(_storage.PARAMS)
                if (
                    t.number not in in_flight
                    or t.number in resolved
                    or not isinstance(chosen, dict)
                ):
                    continue
                try:
                    x = space.encode(chosen)
                except (KeyError, ValueError, TypeError):
                    continue
                budget = _storage.get_budget(t)
                budget_f = float(budget if budget is not None else t_hi)
                resolved.add(t.number)
                with _FIT_LOCK:
                    fitted.add_pending(x, budget_f)
                if budget_f == decision.t and np.max(np.abs(x - decision.x)) <= 1e-3:
                    clashes.append(t.number)
            if not clashes:
                break
            rng = np.random.RandomState(derive_seed(self._seed, "redo", trial.number, clashes))
            with _FIT_LOCK, _limit_threads():
                decision = fitted.suggest(rng, fixed_t=None if enforced else t_hi)
            publish(decision)
        params = space.decode(decision.x)
        _logger.debug(
            f"Trial {trial.number}: budget {decision.t}, log acquisition {decision.log_acq:.3f}, "
            f"params {params}."
        )
        return params

    def _publish(
        self,
        study: Study,
        trial: FrozenTrial,
        params: dict[str, Any] | None,
        budget: int | None,
        model: tuple[FittedModel, Decision] | None,
        initial: bool,
    ) -> None:
        tid = trial._trial_id
        if params is not None:
            _storage.set_system(study, tid, _storage.PARAMS, params)
        if budget is not None:
            _storage.set_system(study, tid, _storage.BUDGET, int(budget))
            _storage.set_user(study, tid, _storage.USER_BUDGET, int(budget))
            if initial:
                _storage.set_user(study, tid, _storage.USER_INITIAL_BUDGET, int(budget))
        if model is not None:
            fitted, decision = model
            _storage.set_system(study, tid, _storage.FIT, decision.hyperparameters)
            sign = -1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else 1.0
            predicted = sign * float(fitted.to_metric(decision.predicted_final))
            _storage.set_user(study, tid, _storage.USER_PREDICTED_SCORE, predicted)
            _storage.set_user(study, tid, _storage.USER_LOG_ACQ, float(decision.log_acq))


def _random_seed() -> int:
    return int(np.random.SeedSequence().generate_state(1)[0] % 2**31)


class _limit_threads:
    """Run torch, OpenMP and BLAS with one thread while deciding.

    Small GPs and SciPy's L-BFGS-B get slower, not faster, with several threads (thread
    start-up and oversubscription dominate); the same limit as Optuna's GPSampler.
    """

    def __enter__(self) -> None:
        self._n = torch.get_num_threads()
        torch.set_num_threads(1)
        self._blas = threadpoolctl.threadpool_limits(limits=1)

    def __exit__(self, *args: object) -> None:
        self._blas.restore_original_limits()
        torch.set_num_threads(self._n)
