"""A model decision's start: publishing it, and settling clashes with parallel workers.

A new trial's choice is written to the storage as soon as it is made (its parameters and
budget, so that other workers see it), then :func:`settle` reads the study again and moves the
trial when another running trial took the same configuration meanwhile.
"""

from __future__ import annotations

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_boil import _context
from optuna_boil import _storage
from optuna_boil._context import Context
from optuna_boil._logging import get_logger
from optuna_boil._logging import warn_once
from optuna_boil._model.fitted import FittedModel
from optuna_boil._model.search_space import SearchSpace
from optuna_boil._policy import Decision
from optuna_boil._policy import Policy


MAX_RECHECKS = 8


def settle(
    study: Study,
    trial: FrozenTrial,
    space: SearchSpace,
    fitted: FittedModel,
    decision: Decision,
    rng: np.random.RandomState,
    enforced: bool,
    known: dict[int, tuple[str, object]],
) -> Decision:
    """Make sure no other running trial trains the same configuration meanwhile.

    After publishing, the study is read again; every published choice this decision did not
    know (not in ``known``) is added as a pending run at its budget, and if another
    RUNNING trial holds the same configuration (:meth:`SearchSpace.same`, whatever its
    budget), this trial moves to its next-best candidate, publishes, and checks again: one
    configuration never runs twice at once (a retrain's label is written only once it is
    settled, so it cannot exempt a run from the check). A finished trial clashes when it ran
    the same configuration for the same budget, unless this decision is a labelled retrain
    (``retrain_of``) and ``known`` (the choices published when the context was read; a trial
    may move to another choice after that) holds that run with this choice: a run chosen after
    the data was read is a duplicate, a run the model trains again on purpose is not.
    Of two trials that chose the same configuration, the one that published later sees the
    other in its check, so a duplicate cannot survive both checks whatever the timing; a
    trial that moves never returns to a point it has seen taken.
    """
    full = float(fitted.model.t_hi)
    seen = dict(known)
    for _ in range(MAX_RECHECKS):
        clash = False
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            chosen = _storage.get_published_params(t)
            if t.number == trial.number or not chosen:  # random choices, or undecided
                continue
            try:
                x = space.encode(dict(chosen))
            except (KeyError, ValueError, TypeError, OverflowError):
                continue
            budget = _storage.get_budget(t)
            key = choice(t)
            same = bool(space.same(x[None], decision.x)[0])
            if t.state == TrialState.RUNNING:
                clash = clash or same
            elif decision.retrain_of is None or known.get(t.number) != key:
                # A finished run of this configuration for this budget is a duplicate unless the
                # decision trains it again on purpose (a labelled retrain) and knew that run
                # with this choice. Without BOILPruner every run is a full run.
                clash = clash or (same and (key[1] == decision.t or not enforced))
            # A trial may have moved since it was seen: condition on its new choice too.
            if seen.get(t.number) != key:
                seen[t.number] = key
                with _context.FIT_LOCK, _context.limit_threads():
                    fitted.add_pending(x, float(budget) if budget is not None else full)
        if not clash:
            return decision
        with _context.FIT_LOCK, _context.limit_threads():
            decision = Policy(fitted).suggest(rng, fixed_t=None if enforced else int(full))
        publish(study, trial, space, fitted, decision, enforced)
    get_logger().warning(
        f"Trial {trial.number}: its configuration still equals another running trial's "
        f"after {MAX_RECHECKS} checks."
    )
    return decision


def publish_random(study: Study, trial: FrozenTrial, ctx: Context, fallback: str | None) -> None:
    """Publish a random (start-up or fallback) decision: the start-up budget, if any."""
    tid = trial._trial_id
    if fallback:
        warn_once(
            (study.study_name, "fallback", fallback),
            f"Trial {trial.number} is sampled at random: {fallback}.",
        )
        _storage.set_user(study, tid, _storage.USER_FALLBACK, fallback)
    _storage.set_system(study, tid, _storage.PARAMS, {})
    budget = ctx.startup_budget() if ctx.range.enforced else None
    if budget is not None:
        _storage.set_initial_budget(study, tid, budget)


def publish(
    study: Study,
    trial: FrozenTrial,
    space: SearchSpace,
    fitted: FittedModel,
    decision: Decision,
    enforced: bool,
) -> None:
    tid = trial._trial_id
    if enforced:
        # The first decision point: once the run has had the shortest look of a new run.
        _storage.set_initial_budget(study, tid, decision.t, fitted.model.t_new_lo)
    _storage.set_system(study, tid, _storage.PARAMS, space.decode(decision.x))
    _context.publish_decision(study, trial, fitted, decision, initial=True)


def choice(trial: FrozenTrial) -> tuple[str, object]:
    """A trial's published choice: its parameters (as a canonical string) and first budget."""
    return (
        repr(sorted(_storage.get_published_params(trial).items())),
        trial.user_attrs.get(_storage.USER_INITIAL_BUDGET, _storage.get_budget(trial)),
    )


def decided(trial: FrozenTrial) -> bool:
    """Whether a running trial's start has been decided (published, or already running)."""
    return bool(
        _storage.PARAMS in trial.system_attrs
        or _storage.BUDGET in trial.system_attrs
        or trial.params
        or trial.intermediate_values
    )
