"""Real benchmark: tune a Double DQN on gymnasium's CartPole (episodes are the training steps).

Task (the kind of task in the BOIL paper): a Double DQN (two-layer 64-unit MLP, replay buffer,
Huber loss, one Adam step per two environment steps, soft target-network updates, epsilon
decaying linearly from 1 to 0.02 over 2000 environment steps) on ``CartPole-v1`` with a 200-step
episode limit (the limit of ``CartPole-v0``; it bounds the cost of a trial). Three
hyperparameters: learning rate (log, 1e-4..1e-2), discount ``gamma`` (0.9..0.999) and the
soft-update rate ``tau`` (log, 1e-3..1e-1). A trial trains for at most ``--max-episodes``
episodes and reports, every 10 episodes, the mean return of the last 10 episodes (steps 10, 20,
...). Every trained episode counts against the run's ``--budget``.

Example::

    python -m benchmarks.real.cartpole --quick          # smoke test, < 60 s
    python -m benchmarks.real.cartpole --seeds 0-2      # the full comparison
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from benchmarks.real import _harness


REPORT_EVERY = 10
EPISODE_LIMIT = 200
HIDDEN = 64
BATCH = 64
BUFFER = 20_000
LEARNING_STARTS = 500
TRAIN_EVERY = 2  # one gradient step per 2 environment steps (keeps a full trial ~10 s on CPU)
EPS_START, EPS_END, EPS_DECAY_STEPS = 1.0, 0.02, 2_000


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """Suggest the three DDQN hyperparameters."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "gamma": trial.suggest_float("gamma", 0.9, 0.999),
        "tau": trial.suggest_float("tau", 1e-3, 1e-1, log=True),
    }


class _Replay:
    """Fixed-size ring buffer of transitions in numpy arrays."""

    def __init__(self, size: int, obs_dim: int) -> None:
        self.obs = np.zeros((size, obs_dim), np.float32)
        self.next_obs = np.zeros((size, obs_dim), np.float32)
        self.action = np.zeros(size, np.int64)
        self.reward = np.zeros(size, np.float32)
        self.done = np.zeros(size, np.float32)
        self.size, self.n, self.pos = size, 0, 0

    def add(self, o: np.ndarray, a: int, r: float, o2: np.ndarray, d: bool) -> None:
        """Store one transition (``d`` is True only for a true termination)."""
        i = self.pos
        self.obs[i], self.action[i], self.reward[i] = o, a, r
        self.next_obs[i], self.done[i] = o2, d
        self.pos = (i + 1) % self.size
        self.n = min(self.n + 1, self.size)

    def sample(self, rng: np.random.Generator, k: int) -> tuple[torch.Tensor, ...]:
        """A uniform batch of ``k`` transitions as tensors."""
        idx = rng.integers(0, self.n, k)
        return (
            torch.from_numpy(self.obs[idx]),
            torch.from_numpy(self.action[idx]),
            torch.from_numpy(self.reward[idx]),
            torch.from_numpy(self.next_obs[idx]),
            torch.from_numpy(self.done[idx]),
        )


def _mlp(obs_dim: int, n_actions: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(obs_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, n_actions),
    )  # fmt: skip


def curve(
    params: dict[str, Any], data_seed: int, seed: int, max_episodes: int
) -> _harness.Reports:
    """Train a Double DQN, yielding ``(episode, mean_return_last_10)`` every 10 episodes.

    Args:
        params: ``lr``, ``gamma`` and ``tau``.
        data_seed: Unused (the environment is seeded by ``seed``).
        seed: Seed of the environment, the network and the exploration.
        max_episodes: Episodes of a full training.
    """
    del data_seed
    import gymnasium as gym

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = gym.make("CartPole-v1", max_episode_steps=EPISODE_LIMIT)
    try:
        yield from _episodes(env, params, seed, rng, max_episodes)
    finally:
        env.close()


def _episodes(
    env: Any, params: dict[str, Any], seed: int, rng: np.random.Generator, max_episodes: int
) -> _harness.Reports:
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    online, target = _mlp(obs_dim, n_actions), _mlp(obs_dim, n_actions)
    target.load_state_dict(online.state_dict())
    for p in target.parameters():
        p.requires_grad_(False)
    optimiser = torch.optim.Adam(online.parameters(), lr=params["lr"], fused=True)
    online_params: list[torch.Tensor] = list(online.parameters())
    target_params: list[torch.Tensor] = list(target.parameters())
    gamma, tau = float(params["gamma"]), float(params["tau"])
    replay = _Replay(BUFFER, obs_dim)
    returns: list[float] = []
    env_steps = 0
    obs, _ = env.reset(seed=seed)
    for episode in range(1, max_episodes + 1):
        obs, _ = env.reset()
        total, done = 0.0, False
        while not done:
            eps = max(EPS_END, EPS_START - (EPS_START - EPS_END) * env_steps / EPS_DECAY_STEPS)
            if rng.random() < eps:
                action = int(rng.integers(n_actions))
            else:
                with torch.no_grad():
                    action = int(online(torch.from_numpy(obs.astype(np.float32))).argmax())
            next_obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(obs, action, float(reward), next_obs, bool(terminated))
            obs, total, env_steps = next_obs, total + float(reward), env_steps + 1
            done = terminated or truncated
            if replay.n >= LEARNING_STARTS and env_steps % TRAIN_EVERY == 0:
                o, a, r, o2, d = replay.sample(rng, BATCH)
                with torch.no_grad():
                    best_next = online(o2).argmax(1, keepdim=True)
                    q_next = target(o2).gather(1, best_next).squeeze(1)
                    y = r + gamma * (1.0 - d) * q_next
                q = online(o).gather(1, a.unsqueeze(1)).squeeze(1)
                loss = nn.functional.smooth_l1_loss(q, y)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                with torch.no_grad():
                    torch._foreach_lerp_(target_params, online_params, tau)
        returns.append(total)
        if episode % REPORT_EVERY == 0:
            yield episode, float(np.mean(returns[-REPORT_EVERY:]))


def make_task(max_episodes: int) -> _harness.Task:
    """The CartPole task description for the harness."""
    return _harness.Task(
        name="cartpole",
        steps=tuple(range(REPORT_EVERY, max_episodes + 1, REPORT_EVERY)),
        suggest=suggest,
        curve=functools.partial(curve, max_episodes=max_episodes),
        metric="mean return of the last 10 episodes",
        unit="episodes",
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    _harness.main(
        argv,
        description=__doc__.split("\n\n")[0],
        make_task=make_task,
        defaults={"budget": 1500, "max_steps": 150, "seeds": "0-2"},
        quick={"budget": 120, "max_steps": 40, "seeds": "0"},
        step_option="--max-episodes",
    )


if __name__ == "__main__":
    main()
