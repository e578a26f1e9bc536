"""How far short runs predict the end, measured on the study's own fully trained runs.

For a few steps ``t`` between the smallest budget and the full step, the Spearman rank
correlation between each fully trained run's value at ``t`` (its last report at or before ``t``)
and its final value says how well a look at ``t`` ranks configurations by what they deliver. On
curves that keep their order (most supervised training) it is close to 1 early; where early
values say nothing (an RL warm-up in which every run sits at the worst return) it is close to 0
until the warm-up ends. The estimate comes with a standard error (Fisher's z, with the
``1.06 / sqrt(n - 3)`` factor for rank correlations) and the number of runs behind it, and is
written to the study's user attributes (``boil_fidelity_trust``), so optuna-dashboard shows it.

The policy believes a look at step ``t`` as far as the rank agreement there says
(:class:`Belief`): the estimate, shrunk towards a prior (worth 4 runs) while few runs are fully
trained. A step believed at least 0.7 (:data:`TRUSTED`) is taken at face value, as without this
module; below it, a run stops there only when a new run is worth ``e**margin`` times more
(:meth:`Belief.margin`, up to ``e**3``), and new runs train at least until the first step that
is believed (:meth:`Belief.look`; to the full step when none is).

The prior is 0.7, trusted, unless the study's looks already fail to keep their order over a
doubling: the rank agreement of every run's value at half the start-up budget with its value at
the start-up budget (the random start-up trials' looks; :func:`start_up`), shrunk the same way,
lowers it. A lowered prior weighs only 2 runs (:data:`LOWERED_PRIOR_RUNS`): it is indirect
evidence about later steps. Looks that do not even predict a look twice as long (an RL warm-up:
on the CartPole DQN, -0.12 between episodes 10 and 20) are not believed at any step until fully
trained runs show that a step predicts the end; looks that do (LCBench: a median of 0.8-0.98
between epochs 2 and 4 on every development task, for 8 random configurations) keep the trusted
prior, so nothing changes for them. (The very first look may say little on either: on LCBench
epoch 1 ranks neither epoch 4 nor the end.)
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import scipy.stats


if TYPE_CHECKING:
    from optuna_boil._model.model import CurveData


MIN_RUNS = 4  # Fewer fully trained runs than this say nothing about ranks.
N_STEPS = 6
PRIOR_RHO = 0.7  # The belief in a step without evidence: taken at face value, as before.
PRIOR_RUNS = 4.0  # The prior's weight, in fully trained runs.
# The weight of a prior lowered by the start-up check: indirect evidence (how short looks rank
# slightly longer ones), so fully trained runs that show a step to predict soon outweigh it.
LOWERED_PRIOR_RUNS = 2.0
TRUSTED = 0.7  # The belief from which a look at a step is taken at face value.
MAX_LOG_EVIDENCE = 3.0  # Log factor a stop needs at a step believed not at all (e**3 ~ 20).


@dataclass(frozen=True)
class Trust:
    """The rank agreement of the values at one step with the final values.

    Attributes:
        step: The step.
        rho: Spearman's rank correlation (0 when every run has the same value there: a look at
            that step tells nothing).
        se: Its standard error (``inf`` with fewer than 4 runs).
        n: The number of fully trained runs that reported at or before ``step``.
    """

    step: int
    rho: float
    se: float
    n: int


def steps_to_check(t_lo: int, t_full: int, n: int = N_STEPS) -> list[int]:
    """``n`` steps spread evenly on a log scale from ``t_lo`` to before ``t_full``."""
    if t_full <= t_lo:
        return []
    grid = t_lo - 1 + np.geomspace(1, t_full - t_lo + 1, n + 1)[:-1]
    return sorted({int(round(t)) for t in grid if round(t) < t_full})


def rank_agreement(data: CurveData, fully_trained: np.ndarray, steps: list[int]) -> list[Trust]:
    """The :class:`Trust` of each step in ``steps``, from the runs at ``fully_trained`` (indices
    into ``data``; their last report is the final value). Non-finite values rank as the worst,
    as everywhere in the package."""
    out = []
    for step in steps:
        early, final = [], []
        for i in fully_trained:
            s, v = data.steps[int(i)], data.values[int(i)]
            k = _last_at(s, step)
            if k < 0 or k == len(s) - 1:
                continue
            early.append(_finite(v[k]))
            final.append(_finite(v[-1]))
        out.append(_spearman(step, np.array(early), np.array(final)))
    return out


def start_up(data: CurveData, early: int, late: int) -> Trust:
    """The rank agreement of each run's value at ``early`` (its last report at or before it)
    with its value at ``late`` (likewise), over the runs that reported at or after ``late``
    and at or before ``early``."""
    first, then = [], []
    for s, v in zip(data.steps, data.values, strict=True):
        if not s.size or s[-1] < late:
            continue
        k_early, k_late = _last_at(s, early), _last_at(s, late)
        if k_early < 0 or k_late <= k_early:
            continue
        first.append(_finite(v[k_early]))
        then.append(_finite(v[k_late]))
    return _spearman(late, np.array(first), np.array(then))


def _last_at(steps: np.ndarray, step: float) -> int:
    """Index of the last report at or before ``step`` (-1 if there is none)."""
    return int(np.searchsorted(steps, step, side="right")) - 1


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) and not math.isnan(value) else -math.inf


def _spearman(step: int, early: np.ndarray, final: np.ndarray) -> Trust:
    n = int(early.size)
    if n < MIN_RUNS:
        return Trust(step, math.nan, math.inf, n)
    early, final = _worst_finite(early), _worst_finite(final)
    if np.ptp(early) == 0.0 or np.ptp(final) == 0.0:
        rho = 0.0
    else:
        rho = float(scipy.stats.spearmanr(early, final).statistic)
    z_se = 1.06 / math.sqrt(n - 3)
    # The standard error of rho from that of Fisher's z = atanh(rho), by the delta method.
    se = z_se * (1.0 - min(rho * rho, 1.0 - 1e-12))
    return Trust(step, rho, se, n)


def _worst_finite(values: np.ndarray) -> np.ndarray:
    """``-inf`` replaced by one less than the smallest finite value (the same ranks)."""
    finite = values[np.isfinite(values)]
    low = float(finite.min()) - 1.0 if finite.size else 0.0
    return np.where(np.isfinite(values), values, low)


def as_attribute(belief: Belief, look: int | None = None) -> dict[str, Any]:
    """The JSON form stored as the study's ``boil_fidelity_trust`` user attribute: per checked
    step the estimate, its standard error, its runs and the policy's belief (:class:`Belief`);
    ``prior``, the belief in a step without evidence, with ``start_up``, the check behind it
    (``rho``, ``n``; absent without one); and ``look``, the shortest budget of a new run when
    given."""

    def number(value: float) -> float | None:
        return round(value, 4) if math.isfinite(value) else None

    trust = belief.trust
    out: dict[str, Any] = {
        "step": [t.step for t in trust],
        "rho": [number(t.rho) for t in trust],
        "se": [number(t.se) for t in trust],
        "n": [t.n for t in trust],
        "belief": [number(belief.at(t.step)) for t in trust],
        "prior": number(belief.prior),
    }
    if belief.short is not None:
        out["start_up"] = {"rho": number(belief.short.rho), "n": belief.short.n}
    if look is not None:
        out["look"] = int(look)
    return out


@dataclass(frozen=True)
class Belief:
    """How far a look at a step is believed, from the study's :class:`Trust` estimates.

    Attributes:
        trust: The rank agreement at the checked steps (ascending).
        short: The rank agreement over the start-up budget (:func:`start_up`), if checked.
    """

    trust: list[Trust]
    short: Trust | None = None

    @property
    def prior(self) -> float:
        """The belief in a step without evidence from fully trained runs: :data:`PRIOR_RHO`,
        or less when the start-up check, shrunk towards it, says less."""
        s = self.short
        if s is None or s.n < MIN_RUNS or not math.isfinite(s.rho):
            return PRIOR_RHO
        return min(PRIOR_RHO, _shrink(s.rho, s.n, PRIOR_RHO, PRIOR_RUNS))

    def at(self, step: float) -> float:
        """The belief in a look at ``step``: the rank agreement at the largest checked step at
        or before it (the first checked step before that), clipped at 0 and shrunk towards
        :attr:`prior`; the prior itself with fewer than :data:`MIN_RUNS` runs."""
        if not self.trust:
            return self.prior
        k = max(int(np.searchsorted([t.step for t in self.trust], step, side="right")) - 1, 0)
        t = self.trust[k]
        if t.n < MIN_RUNS or not math.isfinite(t.rho):
            return self.prior
        prior = self.prior
        weight = PRIOR_RUNS if prior >= PRIOR_RHO else LOWERED_PRIOR_RUNS
        return _shrink(t.rho, t.n, prior, weight)

    def margin(self, step: float) -> float:
        """Log factor by which a new run must be worth more than continuing a run at ``step``
        for the run to stop there: 0 at a believed step, :data:`MAX_LOG_EVIDENCE` at one
        believed not at all."""
        return MAX_LOG_EVIDENCE * max(TRUSTED - self.at(step), 0.0) / TRUSTED

    def look(self, t_lo: int, t_full: int) -> int:
        """The shortest look a new run gets: the first checked step that is believed
        (``t_lo`` when nothing is checked), ``t_full`` when no checked step is."""
        if not self.trust:
            return t_lo
        for t in self.trust:
            if self.at(t.step) >= TRUSTED:
                return max(t.step, t_lo)
        return t_full


def _shrink(rho: float, n: int, prior: float, weight: float) -> float:
    """``rho`` clipped to ``[0, 1]``, shrunk towards ``prior`` (worth ``weight`` runs)."""
    rho = min(max(rho, 0.0), 1.0)
    return (n * rho + weight * prior) / (n + weight)


def belief(
    data: CurveData,
    fully_trained: np.ndarray,
    t_lo: int,
    t_full: int,
    t_start_up: int | None = None,
) -> Belief:
    """The :class:`Belief` of a study's data, from its fully trained runs and, when the
    start-up budget ``t_start_up`` lies between ``t_lo`` and ``t_full``, the start-up check:
    the rank agreement of the runs' values at half the start-up budget (at least ``t_lo``) with
    their values at it, whether looks keep their order over a doubling."""
    trust = rank_agreement(data, fully_trained, steps_to_check(t_lo, t_full))
    short = None
    if t_start_up is not None and t_lo < t_start_up < t_full:
        short = start_up(data, max(t_lo, t_start_up // 2), t_start_up)
    return Belief(trust, short)
