"""Real benchmark: tune PPO on gymnasium's Pendulum (episodes are the training steps).

Task: PPO with a Gaussian policy (clipped surrogate, clip 0.2) on ``Pendulum-v1`` (continuous
torque, 200-step episodes, returns from about -1600 to about -150). An on-policy actor-critic,
a different kind of learner than the CartPole DQN: each PPO iteration plays ``N_ENVS`` = 10
episodes in parallel (10 environments, one batched policy call per time step), computes
advantages with GAE (bootstrapping the truncated last state, on rewards scaled by 0.1) and takes
10 passes of 250-transition minibatch Adam steps over the 2000 transitions. Actor and critic are
separate two-layer 64-unit tanh MLPs; the policy's log standard deviation is a free parameter.
Four hyperparameters: the actor's learning rate (log, 1e-5..1e-2), the critic's learning rate
(log, 1e-5..1e-2), the discount ``gamma`` (0.8..0.999) and the GAE ``lambda`` (0.5..1.0). Good
configurations reach about -200 within 300-500 episodes; more than half of random ones stay below
-800 (too small a learning rate, too short a horizon). A trial trains for at most
``--max-episodes`` episodes (600 by default, 12-15 s on one core) and reports, every 20 episodes
(two PPO iterations), the mean return of the last 20 episodes (steps 20, 40, ...). Every trained
episode counts against the run's ``--budget`` (6000 by default: 10 full trainings).

Example::

    python -m benchmarks.real.pendulum --quick          # smoke test, < 60 s
    python -m benchmarks.real.pendulum --seeds 0-2      # the full comparison
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from benchmarks.real import _harness


REPORT_EVERY = 20
N_ENVS = 10  # episodes per PPO iteration, played in parallel
EPISODE_LIMIT = 200
HIDDEN = 64
EPOCHS = 10
MINIBATCH = 250
CLIP = 0.2
MAX_GRAD_NORM = 0.5
REWARD_SCALE = 0.1  # the critic learns scaled returns (the reports are unscaled returns)
MAX_TORQUE = 2.0
OBS_SCALE = (1.0, 1.0, 1.0 / 8.0)  # cos, sin, angular velocity (|v| <= 8)


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """Suggest the four PPO hyperparameters."""
    return {
        "actor_lr": trial.suggest_float("actor_lr", 1e-5, 1e-2, log=True),
        "critic_lr": trial.suggest_float("critic_lr", 1e-5, 1e-2, log=True),
        "gamma": trial.suggest_float("gamma", 0.8, 0.999),
        "gae_lambda": trial.suggest_float("gae_lambda", 0.5, 1.0),
    }


def _mlp(obs_dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(obs_dim, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
        nn.Linear(HIDDEN, out),
    )  # fmt: skip


def curve(
    params: dict[str, Any], data_seed: int, seed: int, max_episodes: int
) -> _harness.Reports:
    """Train PPO, yielding ``(episode, mean_return_last_20)`` every 20 episodes.

    Args:
        params: ``actor_lr``, ``critic_lr``, ``gamma`` and ``gae_lambda``.
        data_seed: Unused (the environments are seeded by ``seed``).
        seed: Seed of the environments, the networks, the action noise and the minibatches.
        max_episodes: Episodes of a full training (rounded up to a multiple of ``N_ENVS``).
    """
    del data_seed
    import gymnasium as gym

    torch.manual_seed(seed)
    envs = [gym.make("Pendulum-v1", max_episode_steps=EPISODE_LIMIT) for _ in range(N_ENVS)]
    try:
        for i, env in enumerate(envs):
            env.reset(seed=seed * N_ENVS + i)
        yield from _iterations(envs, params, seed, max_episodes)
    finally:
        for env in envs:
            env.close()


def _rollout(
    envs: list[Any], actor: nn.Module, log_std: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Play one episode in every environment.

    Returns:
        Observations ``(T + 1, N, 3)`` (scaled, the last one only for bootstrapping), the
        unclipped actions ``(T, N, 1)``, their log-probabilities ``(T, N)`` and the raw rewards
        ``(T, N)``.
    """
    scale = np.asarray(OBS_SCALE, np.float32)
    n = len(envs)
    obs = np.empty((EPISODE_LIMIT + 1, n, 3), np.float32)
    rewards = np.empty((EPISODE_LIMIT, n), np.float32)
    obs[0] = np.stack([env.reset()[0] for env in envs]) * scale
    obs_t = torch.from_numpy(obs)
    actions = torch.empty(EPISODE_LIMIT, n, 1)
    std = log_std.detach().exp()
    with torch.no_grad():
        for t in range(EPISODE_LIMIT):
            mean = actor(obs_t[t])
            actions[t] = mean + std * torch.randn(mean.shape, generator=generator)
            torque = actions[t].clamp(-MAX_TORQUE, MAX_TORQUE).numpy()
            for i, env in enumerate(envs):
                # Pendulum never terminates; every episode is truncated after EPISODE_LIMIT.
                o, r, _, _, _ = env.step(torque[i])
                obs[t + 1, i] = o * scale
                rewards[t, i] = r
        log_prob = _log_prob(actor(obs_t[:-1]), log_std, actions)
    return obs_t, actions, log_prob, rewards


def _log_prob(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Log-density of ``action`` under independent Gaussians, summed over the action dims."""
    z = (action - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * np.log(2.0 * np.pi)).sum(-1)


def _gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and value targets of truncated episodes (``values`` has ``T + 1`` rows)."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * values[t + 1] - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages, advantages + values[:-1]


def _iterations(
    envs: list[Any], params: dict[str, Any], seed: int, max_episodes: int
) -> _harness.Reports:
    actor, critic = _mlp(3, 1), _mlp(3, 1)
    actor_out, critic_out = actor[-1], critic[-1]
    assert isinstance(actor_out, nn.Linear) and isinstance(critic_out, nn.Linear)
    with torch.no_grad():  # small initial actions, a flat initial value
        actor_out.weight.mul_(0.01)
        actor_out.bias.zero_()
        critic_out.weight.mul_(0.1)
    log_std = nn.Parameter(torch.zeros(1))
    actor_opt = torch.optim.Adam([*actor.parameters(), log_std], lr=params["actor_lr"])
    critic_opt = torch.optim.Adam(critic.parameters(), lr=params["critic_lr"])
    gamma, lam = float(params["gamma"]), float(params["gae_lambda"])
    generator = torch.Generator().manual_seed(seed)
    returns: list[float] = []
    while True:
        obs, actions, old_log_prob, rewards = _rollout(envs, actor, log_std, generator)
        returns += rewards.sum(0).astype(float).tolist()
        for episode in range(len(returns) - N_ENVS + 1, len(returns) + 1):
            if episode % REPORT_EVERY == 0 and episode <= max_episodes:
                yield episode, float(np.mean(returns[episode - REPORT_EVERY : episode]))
        if len(returns) >= max_episodes:
            return
        with torch.no_grad():
            values = critic(obs).squeeze(-1)
            advantages, targets = _gae(
                torch.from_numpy(rewards) * REWARD_SCALE, values, gamma, lam
            )
        flat_obs = obs[:-1].reshape(-1, 3)
        flat_act, flat_old = actions.reshape(-1, 1), old_log_prob.reshape(-1)
        flat_adv, flat_target = advantages.reshape(-1), targets.reshape(-1)
        flat_adv = (flat_adv - flat_adv.mean()) / (flat_adv.std() + 1e-8)
        n = flat_obs.shape[0]
        for _ in range(EPOCHS):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, MINIBATCH):
                idx = order[start : start + MINIBATCH]
                log_prob = _log_prob(actor(flat_obs[idx]), log_std, flat_act[idx])
                ratio = (log_prob - flat_old[idx]).exp()
                adv = flat_adv[idx]
                surrogate = torch.min(ratio * adv, ratio.clamp(1 - CLIP, 1 + CLIP) * adv)
                actor_loss = -surrogate.mean()
                actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                nn.utils.clip_grad_norm_([*actor.parameters(), log_std], MAX_GRAD_NORM)
                actor_opt.step()
                value_loss = (critic(flat_obs[idx]).squeeze(-1) - flat_target[idx]).pow(2).mean()
                critic_opt.zero_grad(set_to_none=True)
                value_loss.backward()
                nn.utils.clip_grad_norm_(critic.parameters(), MAX_GRAD_NORM)
                critic_opt.step()


def make_task(max_episodes: int) -> _harness.Task:
    """The Pendulum task description for the harness."""
    return _harness.Task(
        name="pendulum",
        steps=tuple(range(REPORT_EVERY, max_episodes + 1, REPORT_EVERY)),
        suggest=suggest,
        curve=functools.partial(curve, max_episodes=max_episodes),
        metric="mean return of the last 20 episodes",
        unit="episodes",
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    _harness.main(
        argv,
        description=__doc__.split("\n\n")[0],
        make_task=make_task,
        defaults={"budget": 6000, "max_steps": 600, "seeds": "0-2"},
        quick={"budget": 100, "max_steps": 40, "seeds": "0"},
        step_option="--max-episodes",
    )


if __name__ == "__main__":
    main()
