from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import threading
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_boil import _context
from optuna_boil import _settle
from optuna_boil import _storage
from optuna_boil._context import Context
from optuna_boil._context import Settings
from optuna_boil._logging import get_logger
from optuna_boil._logging import warn_once
from optuna_boil._model.search_space import SearchSpace
from optuna_boil._policy import Policy


class BOILSampler(BaseSampler, _context.SettingsHolder):
    """Sampler based on BOIL, Bayesian Optimization for Iterative Learning.

    BOIL (`Nguyen et al., NeurIPS 2020 <https://arxiv.org/abs/1909.09593>`__) uses the whole
    learning curve that a trial reports with :meth:`~optuna.trial.Trial.report`. Each curve is
    compressed into one score by a logistic weighting that rewards late, stable progress and is
    fitted with the model; one Gaussian process over (hyperparameters, training step) is fitted
    to the scores; a few points of every curve are added to the GP where it is most uncertain
    (selective augmentation, guarded by the covariance condition number); and the next
    configuration *and how long to train it* are chosen per unit of training cost. A new trial
    may also train a configuration seen before again, to ``max_resource``, when having it fully
    trained is worth most: the study's best trial is then a fully trained one. While nothing is
    fully trained, the first model decision trains to ``max_resource``, so
    :attr:`~optuna.study.Study.best_trial` exists right after the start-up and one full run.

    Use it with :class:`~optuna_boil.BOILPruner`, which enforces the chosen budgets and, when a
    trial reaches its budget, lets the model decide whether it continues (the most promising
    configurations are trained to ``max_resource`` and end COMPLETE). With any other pruner the
    sampler still learns from every curve, but cannot choose budgets: it then proposes
    configurations for the full budget.

    .. note::
        How trials are used: COMPLETE, PRUNED and FAIL trials contribute their whole curve
        (a PRUNED trial its curve, not just its last value); RUNNING trials contribute their
        partial curve and count as pending at their budget, so parallel workers do not pick the
        same point; a FAIL trial retried by Optuna's heartbeat callback is not counted twice;
        WAITING trials are ignored. A COMPLETE trial that reported nothing counts as one point
        at the full budget, so a study without reports is plain GP-based optimisation.

    .. note::
        Non-finite reports: NaN and the bad infinity (``-inf`` when maximising, ``+inf`` when
        minimising) count as the worst finite value observed in the study; the good infinity as
        the best. Nothing is dropped. The pruner uses the same data.

    .. note::
        Reproducibility: with a fixed ``seed`` and one worker, decisions are identical from run
        to run, and a fresh sampler on the same storage makes the same decision (all state lives
        in the storage). Parallel workers are not reproducible, as with every Optuna sampler.

    Args:
        seed:
            Seed for the random start-up trials and the model's decisions. Defaults to a random
            seed.
        n_startup_trials:
            Number of trials with data before the model is used; until then configurations are
            drawn at random (with per-trial seeds) and trained for ``startup_budget`` steps.
            Defaults to 8.
        startup_budget:
            Budget of the start-up trials, and the least budget of any new configuration.
            Defaults to ``min_resource`` plus a sixteenth of the budget range (4 steps for steps
            1 to 52).
        independent_sampler:
            Sampler for parameters outside the relative search space. Defaults to a
            :class:`~optuna.samplers.RandomSampler` seeded per trial.
        cost:
            ``"steps"`` (default): cost is counted in steps, the unit budgets are given in.
            ``"wallclock"``: seconds between a trial's start and completion. Costs reported with
            :func:`~optuna_boil.report_cost` override both. A cost that is not in steps decides
            only how long a configuration trains, never which configuration.
        stale_after:
            Seconds after which a RUNNING trial without any sign of life (start, or a pruner
            call) stops counting as pending, for workers that died without Optuna's heartbeat.
            Its curve is still used. :obj:`None` keeps every RUNNING trial pending. Defaults to
            3600.
        warn_independent_sampling:
            Warn (once per study and parameter) when a parameter is sampled by the independent
            sampler after start-up. Defaults to :obj:`True`.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 8,
        startup_budget: int | None = None,
        independent_sampler: BaseSampler | None = None,
        cost: str = "steps",
        stale_after: float | None = 3600.0,
        warn_independent_sampling: bool = True,
    ) -> None:
        if (
            not isinstance(n_startup_trials, int)
            or isinstance(n_startup_trials, bool)
            or n_startup_trials < 1
        ):
            raise ValueError(
                f"`n_startup_trials` must be an integer >= 1, got {n_startup_trials!r}."
            )
        if startup_budget is not None and (
            not isinstance(startup_budget, int)
            or isinstance(startup_budget, bool)
            or startup_budget < 0
        ):
            raise ValueError(
                f"`startup_budget` must be a non-negative integer, got {startup_budget!r}."
            )
        if cost not in _context.COST_MODES:
            raise ValueError(f"`cost` must be one of {_context.COST_MODES}, got {cost!r}.")
        if stale_after is not None and not stale_after > 0:
            raise ValueError(f"`stale_after` must be positive or None, got {stale_after!r}.")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"`seed` must be an integer or None, got {seed!r}.")
        self._settings = Settings(
            seed=seed if seed is not None else _context.random_seed(),
            n_startup_trials=n_startup_trials,
            startup_budget=startup_budget,
            cost=cost,
            stale_after=stale_after,
        )
        self._independent_sampler = independent_sampler
        self._warn_independent_sampling = warn_independent_sampling
        # The context of the trial being decided, shared by this thread's calls for that trial
        # (the relative search space, the relative sample and the independent samples), so a
        # trial's start reads the storage once.
        self._thread = threading.local()

    def _configure(self, **overrides: Any) -> BOILSampler:
        """Change settings that are not public (ablation switches for the benchmarks).

        Keys are fields of :class:`~optuna_boil._model.model.ModelConfig` (``learn_compression``,
        ``augmentation``, ``cost_aware``, ``deliver_new``, ``deliver_best``, ``first_full``,
        ``max_gp_points``, ...) or of :class:`~optuna_boil._context.Settings` (``cash_in``,
        ``n_startup_trials``, ...).
        """
        model_fields = {f.name for f in dataclasses.fields(self._settings.model)}
        settings_fields = {f.name for f in dataclasses.fields(self._settings)} - {"model"}
        unknown = set(overrides) - model_fields - settings_fields
        if unknown:
            raise ValueError(f"Unknown BOIL options {sorted(unknown)}.")
        model = dataclasses.replace(
            self._settings.model, **{k: v for k, v in overrides.items() if k in model_fields}
        )
        self._settings = dataclasses.replace(
            self._settings,
            model=model,
            **{k: v for k, v in overrides.items() if k in settings_fields},
        )
        return self

    def boil_settings(self) -> Settings:
        return self._settings

    def reseed_rng(self) -> None:
        self._settings = dataclasses.replace(self._settings, seed=_context.random_seed())
        if self._independent_sampler is not None:
            self._independent_sampler.reseed_rng()

    def _context(self, study: Study, trial: FrozenTrial) -> Context:
        cached = getattr(self._thread, "context", None)
        if cached is not None and cached[0] == (study._study_id, trial.number):
            return cached[1]
        ctx = Context(study, _context.read_trials(study), self._settings)
        self._thread.context = ((study._study_id, trial.number), ctx)
        return ctx

    # Search space -----------------------------------------------------------------------------

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._raise_error_if_multi_objective(study)
        return _context.search_space(self._context(study, trial).trials)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._raise_error_if_multi_objective(study)
        ctx = self._context(study, trial)
        # A parameter of the relative search space is sampled here only when the model could
        # not decide (a fallback, recorded as ``boil_fallback``), or when the value the model
        # chose lies outside this trial's range: it is not conditional.
        if (
            self._warn_independent_sampling
            and not ctx.in_startup(trial.number)
            and param_name not in _context.search_space(ctx.trials)
        ):
            warn_once(
                (study.study_name, "independent", param_name),
                f"The parameter '{param_name}' (first in trial#{trial.number}) is sampled "
                "independently instead of by BOILSampler: it is not in every trial's search "
                "space (conditional or dynamic). This is said once per study and parameter; "
                "pass `warn_independent_sampling=False` to silence it.",
            )
        sampler = self._independent_sampler or RandomSampler(
            seed=_context.derive_seed(self._settings.seed, trial.number, param_name)
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
        if getattr(self._thread, "context", None) is not None:
            self._thread.context = None
        if self._independent_sampler is not None:
            self._independent_sampler.after_trial(study, trial, state, values)

    # Decisions --------------------------------------------------------------------------------

    def sample_relative(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        ctx = self._context(study, trial)
        enforced = ctx.range.enforced
        if not enforced:
            warn_once(
                (study.study_name, "no pruner"),
                "BOILSampler is used without BOILPruner: it learns from every reported curve but "
                "cannot choose how long each trial trains. Add "
                "`pruner=optuna_boil.BOILPruner(min_resource=..., max_resource=...)` to let BOIL "
                "choose training budgets.",
            )
        if not search_space or ctx.in_startup(trial.number) or ctx.range.t_full is None:
            _settle.publish_random(study, trial, ctx, None)
            return {}
        space = SearchSpace(search_space)
        fitted, reason = ctx.fit(space, exclude=trial.number)
        if fitted is None:
            _settle.publish_random(study, trial, ctx, reason)
            return {}
        # Workers that started a trial just before this one may be deciding at this moment,
        # unseen: on the same data they would pick the same point. Each such trial takes one of
        # the best distinct candidates (in trial-number order); after publishing, a re-check
        # settles any clash that remains (see _settle).
        in_flight = sum(
            1
            for t in ctx.trials
            if t.state == TrialState.RUNNING and t.number < trial.number and not _settle.decided(t)
        )
        rng = np.random.RandomState(
            _context.derive_seed(ctx.settings.seed, "suggest", trial.number)
        )
        fixed_t = None if enforced else ctx.range.t_full
        _context.publish_trust(study, fitted)
        resumes = any(_storage.calls_resume(t) for t in ctx.trials)
        with _context.FIT_LOCK, _context.limit_threads():
            decision = Policy(fitted, resumes=resumes).suggest(
                rng, fixed_t=fixed_t, skip=in_flight, explore=_explores(ctx, trial.number)
            )
        _settle.publish(study, trial, space, fitted, decision, enforced)
        known = {
            t.number: _settle.choice(t) for t in ctx.trials if _storage.get_published_params(t)
        }
        # A decision moved by a clash is the acquisition's next choice, no longer ``drawn``.
        decision = _settle.settle(study, trial, space, fitted, decision, rng, enforced, known)
        if decision.drawn:
            _storage.set_user(study, trial._trial_id, _storage.USER_RANDOM, True)
        if decision.retrain_of is not None:  # written once settled: a moved trial never has it
            _storage.set_user(
                study, trial._trial_id, _storage.USER_RETRAIN_OF, decision.retrain_of
            )
        params = space.decode(decision.x)
        source = _resume_source(ctx, decision.retrain_of, decision.t) if resumes else None
        if source is not None:
            # The run continues: exactly the earlier trial's parameters, from its last step.
            params = {name: source.params.get(name, v) for name, v in params.items()}
            _storage.set_system(study, trial._trial_id, _storage.PARAMS, params)
            _storage.set_system(
                study, trial._trial_id, _storage.RESUME_OF, [source.number, source.last_step]
            )
        get_logger().info(
            f"Trial {trial.number} trains for {decision.t} steps"
            + (" a configuration drawn at random" if decision.drawn else "")
            + (
                f" trial {decision.retrain_of}'s configuration again"
                if decision.retrain_of is not None
                else ""
            )
            + (f", from its step {source.last_step}" if source is not None else "")
            + f": {params}."
        )
        return params


def _explores(ctx: Context, number: int) -> bool:
    """Whether trial ``number``'s configuration is drawn at random (``random_fraction``): a
    draw of its own seed, so every worker and a rerun agree."""
    fraction = ctx.settings.model.random_fraction
    if fraction <= 0.0:
        return False
    rng = np.random.RandomState(_context.derive_seed(ctx.settings.seed, "explore", number))
    return bool(rng.uniform() < fraction)


def _resume_source(ctx: Context, number: int | None, budget: int) -> FrozenTrial | None:
    """The PRUNED trial whose run a retrain of trial ``number``'s configuration continues, in a
    study whose objective resumes runs: that trial, when it stopped before ``budget`` and no
    trial that did not fail continues it already."""
    if number is None:
        return None
    source = next((t for t in ctx.trials if t.number == number), None)
    if source is None or source.state != TrialState.PRUNED or source.last_step is None:
        return None
    if source.last_step >= budget:
        return None
    for t in ctx.trials:
        held = _storage.held_run(t)  # an offer counts until the objective answered it
        if held is not None and held[0] == number and t.state != TrialState.FAIL:
            return None
    return source
