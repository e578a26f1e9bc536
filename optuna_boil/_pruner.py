from __future__ import annotations

from collections.abc import Sequence
import time

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_boil import _storage
from optuna_boil._model.search_space import SearchSpace
from optuna_boil._sampler import _FIT_LOCK
from optuna_boil._sampler import BOILSampler
from optuna_boil._sampler import _limit_threads
from optuna_boil._sampler import derive_seed


_logger = optuna.logging.get_logger(__name__)


class BOILPruner(BasePruner):
    """Pruner that trains each trial for the budget BOIL chose (and can extend it).

    A trial is never stopped before it reports a step of at least ``min_resource``. It is stopped
    (``should_prune()`` returns :obj:`True`) once it reports a step at or beyond its budget
    (``boil:budget``, chosen by :class:`~optuna_boil.BOILSampler` and readable with
    :func:`~optuna_boil.get_budget`). With ``extend=True`` it is instead continued when the model
    says that *continuing* it beats starting a new configuration per unit of cost (continuing
    costs only the extra steps); the budget then grows by a sixteenth of the range at a time.
    Trials that reach ``max_resource`` are not stopped; the objective returns and they end
    COMPLETE. Trials stopped at their budget end PRUNED, with their value equal to
    the last reported value (Optuna's convention); their curves are data for the sampler like any
    other.

    Every decision is a function of the storage's contents and the constructor arguments, so any
    worker (or a new process) makes the same decision.

    Args:
        min_resource:
            Smallest budget, in the step units of :meth:`~optuna.trial.Trial.report`.
        max_resource:
            Largest budget (the full training length), or ``"auto"`` to take the last step of the
            first trial that finished (as :class:`~optuna.pruners.HyperbandPruner`).
        extend:
            Let trials that reached their budget continue when that is worth more per unit of
            cost than a new configuration (beyond BOIL). The default :obj:`False` is BOIL's
            published behaviour (every run trains from scratch to its budget), which did better
            on the LCBench development tasks (see ``benchmarks/results/lcbench.md``).
        seed:
            Seed for the model's decisions when the study's sampler is not a
            :class:`~optuna_boil.BOILSampler` (otherwise the sampler's settings are used).
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        max_resource: int | str = "auto",
        extend: bool = False,
        seed: int | None = None,
    ) -> None:
        if not isinstance(min_resource, int) or isinstance(min_resource, bool) or min_resource < 0:
            raise ValueError(
                f"`min_resource` must be a non-negative integer, got {min_resource!r}."
            )
        if max_resource != "auto" and (
            not isinstance(max_resource, int)
            or isinstance(max_resource, bool)
            or max_resource < min_resource
        ):
            raise ValueError(
                f"`max_resource` must be 'auto' or an integer >= min_resource ({min_resource}), "
                f"got {max_resource!r}."
            )
        if max_resource == min_resource:
            _logger.warning(
                f"min_resource == max_resource == {min_resource}: every trial trains for the same "
                "budget, so BOIL cannot trade training length against information."
            )
        self._min_resource = min_resource
        self._max_resource = max_resource
        self._extend = extend
        self._fallback_sampler = BOILSampler(seed=seed if seed is not None else 0)
        # Only throttles the liveness writes; no decision depends on it.
        self._alive_written: dict[int, float] = {}

    def _resolve_max(self, trials: Sequence[FrozenTrial]) -> int | None:
        if isinstance(self._max_resource, int):
            return self._max_resource
        finished = [
            t for t in trials if t.state == TrialState.COMPLETE and t.last_step is not None
        ]
        if not finished:
            return None
        first = min(finished, key=lambda t: t.number)
        return max(int(first.last_step or 0), self._min_resource)

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        self._mark_alive(study, trial)
        step = trial.last_step
        if step is None or step < self._min_resource:
            return False
        trials = study._get_trials(deepcopy=False, states=None, use_cache=False)
        t_hi = self._resolve_max(trials)
        if t_hi is None:
            return False
        if step >= t_hi:
            return step > t_hi
        budget = _storage.get_budget(trial)
        if budget is None:
            budget = self._assign_budget(study, trial, trials, t_hi)
        if step < budget:
            return False
        sampler = self._sampler(study)
        if self._extend and sampler._n_with_data(trials, None) > sampler._n_startup_trials:
            new_budget = self._extension(study, trial, trials, t_hi)
            if new_budget is not None:
                extensions = int(trial.system_attrs.get(_storage.EXTENSIONS, 0)) + 1
                tid = trial._trial_id
                _storage.set_system(study, tid, _storage.BUDGET, new_budget)
                _storage.set_system(study, tid, _storage.EXTENSIONS, extensions)
                _storage.set_user(study, tid, _storage.USER_BUDGET, new_budget)
                _storage.set_user(study, tid, _storage.USER_EXTENSIONS, extensions)
                _logger.debug(f"Trial {trial.number}: budget extended to {new_budget}.")
                return False
        _storage.set_user(study, trial._trial_id, _storage.USER_STOP, f"budget {budget} reached")
        return True

    def _mark_alive(self, study: Study, trial: FrozenTrial) -> None:
        """Record (at most every 30 s) that the trial is alive, for the stale-trial rule."""
        now = time.time()
        if now - self._alive_written.get(trial._trial_id, 0.0) >= 30.0:
            self._alive_written[trial._trial_id] = now
            _storage.set_system(study, trial._trial_id, _storage.ALIVE, now)

    def _sampler(self, study: Study) -> BOILSampler:
        return study.sampler if isinstance(study.sampler, BOILSampler) else self._fallback_sampler

    def _space(self, trials: Sequence[FrozenTrial], trial: FrozenTrial) -> SearchSpace | None:
        dists = {n: d for n, d in trial.distributions.items() if not d.single()}
        return SearchSpace(dists) if dists else None

    def _assign_budget(
        self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial], t_hi: int
    ) -> int:
        """Budget for a trial whose parameters came from another sampler (or no sampler call)."""
        sampler = self._sampler(study)
        budget = sampler.startup_budget(self._min_resource, t_hi) or t_hi
        space = self._space(trials, trial)
        if (
            space is not None
            and sampler._n_with_data(trials, trial.number) >= sampler._n_startup_trials
        ):
            result = sampler.fit(study, trials, space, self._min_resource, t_hi, trial.number)
            if result is not None:
                fitted, _ = result
                rng = np.random.RandomState(derive_seed(sampler._seed, "budget", trial.number))
                with _FIT_LOCK, _limit_threads():
                    budget = fitted.budget_for(space.encode(trial.params), rng).t
        tid = trial._trial_id
        _storage.set_system(study, tid, _storage.BUDGET, int(budget))
        _storage.set_user(study, tid, _storage.USER_BUDGET, int(budget))
        _storage.set_user(study, tid, _storage.USER_INITIAL_BUDGET, int(budget))
        return int(budget)

    def _extension(
        self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial], t_hi: int
    ) -> int | None:
        space = self._space(trials, trial)
        if space is None:
            return None
        sampler = self._sampler(study)
        result = sampler.fit(study, trials, space, self._min_resource, t_hi, exclude_number=None)
        if result is None:
            return None
        fitted, _ = result
        numbers = list(fitted.data.numbers)
        if trial.number not in numbers:
            return None
        index = numbers.index(trial.number)
        step = float(trial.last_step or 0)
        rng = np.random.RandomState(derive_seed(sampler._seed, "extend", trial.number, step))
        with _FIT_LOCK, _limit_threads():
            extend_to, _, _ = fitted.continuation(index, step, rng)
        return extend_to
