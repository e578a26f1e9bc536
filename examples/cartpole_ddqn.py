"""Tune a Double DQN agent on gymnasium's CartPole-v1 with BOIL (the BOIL paper's DRL task).

Steps are *episodes*. Returns are noisy from one episode to the next, so the objective reports
sparsely: every ``--report-every`` episodes it reports the mean return of those episodes, at the
step of the current episode number. BOIL places each report by its step, so budgets, the curve
compression and the pruner all work in episodes. Tuned: learning rate, discount factor, the soft
target-network update rate and the exploration decay.

Requires ``pip install gymnasium``.

    python examples/cartpole_ddqn.py                  # 12 trials, up to 100 episodes each
    python examples/cartpole_ddqn.py --smoke          # 3 tiny trials, a few seconds
"""

from __future__ import annotations

import argparse
from collections import deque
import random

import gymnasium as gym
import numpy as np
import optuna
import torch
from torch import nn

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import recommend


class ReplayBuffer:
    """A fixed-size FIFO buffer of transitions, sampled uniformly."""

    def __init__(self, capacity: int, seed: int) -> None:
        self._items: deque[tuple[np.ndarray, int, float, np.ndarray, float]] = deque(
            maxlen=capacity
        )
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self._items)

    def add(
        self, state: np.ndarray, action: int, reward: float, nxt: np.ndarray, done: bool
    ) -> None:
        """Store one transition (``done`` is true only for termination, not truncation)."""
        self._items.append((state, action, reward, nxt, float(done)))

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """A batch of ``(states, actions, rewards, next_states, dones)`` tensors."""
        batch = self._rng.sample(self._items, batch_size)
        states, actions, rewards, nexts, dones = zip(*batch, strict=True)
        return (
            torch.as_tensor(np.array(states), dtype=torch.float32),
            torch.as_tensor(actions, dtype=torch.long),
            torch.as_tensor(rewards, dtype=torch.float32),
            torch.as_tensor(np.array(nexts), dtype=torch.float32),
            torch.as_tensor(dones, dtype=torch.float32),
        )


def q_network(n_obs: int, n_actions: int, hidden: int = 64) -> nn.Module:
    """A two-layer MLP from observations to action values."""
    return nn.Sequential(
        nn.Linear(n_obs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, n_actions),
    )  # fmt: skip


def objective(
    trial: optuna.Trial, max_episodes: int, report_every: int, max_episode_steps: int
) -> float:
    """Train DDQN episode by episode; report mean returns every ``report_every`` episodes."""
    lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    gamma = trial.suggest_float("gamma", 0.9, 0.999)
    tau = trial.suggest_float("tau", 1e-3, 1e-1, log=True)
    epsilon_decay = trial.suggest_float("epsilon_decay", 0.8, 0.99)
    batch_size, epsilon_min = 64, 0.02

    seed = trial.number
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = gym.make("CartPole-v1", max_episode_steps=max_episode_steps)
    obs_shape, actions = env.observation_space.shape, env.action_space
    assert obs_shape is not None and isinstance(actions, gym.spaces.Discrete)
    n_obs, n_actions = obs_shape[0], int(actions.n)
    online, target = q_network(n_obs, n_actions), q_network(n_obs, n_actions)
    target.load_state_dict(online.state_dict())
    optimiser = torch.optim.Adam(online.parameters(), lr=lr)
    buffer = ReplayBuffer(20_000, seed)

    epsilon, returns, mean_return = 1.0, [], 0.0
    try:
        for episode in range(1, max_episodes + 1):
            state, _ = env.reset(seed=seed * 10_000 + episode)
            episode_return, done = 0.0, False
            while not done:
                if rng.random() < epsilon:
                    action = int(rng.integers(n_actions))
                else:
                    with torch.no_grad():
                        q = online(torch.as_tensor(state, dtype=torch.float32))
                    action = int(q.argmax())
                nxt, reward, terminated, truncated, _ = env.step(action)
                buffer.add(state, action, float(reward), nxt, terminated)
                state, done = nxt, terminated or truncated
                episode_return += float(reward)
                if len(buffer) >= batch_size:
                    s, a, r, s2, d = buffer.sample(batch_size)
                    with torch.no_grad():
                        # Double DQN: the online network picks the action, the target rates it.
                        best = online(s2).argmax(1, keepdim=True)
                        bootstrap = target(s2).gather(1, best).squeeze(1)
                        y = r + gamma * (1.0 - d) * bootstrap
                    q_sa = online(s).gather(1, a.unsqueeze(1)).squeeze(1)
                    loss = nn.functional.smooth_l1_loss(q_sa, y)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    with torch.no_grad():  # Soft (Polyak) target update.
                        for p_t, p in zip(target.parameters(), online.parameters(), strict=True):
                            p_t.mul_(1.0 - tau).add_(p, alpha=tau)
            epsilon = max(epsilon_min, epsilon * epsilon_decay)
            returns.append(episode_return)
            if episode % report_every == 0 or episode == max_episodes:
                mean_return = float(np.mean(returns[-report_every:]))
                trial.report(mean_return, episode)
                if trial.should_prune():
                    raise optuna.TrialPruned()
    finally:
        env.close()
    return mean_return


def main() -> None:
    """Parse the command line and run the study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=12)
    parser.add_argument("--max-episodes", type=int, default=100)
    parser.add_argument("--report-every", type=int, default=10)
    parser.add_argument(
        "--max-episode-steps", type=int, default=200, help="200 as in CartPole-v0 (the paper)"
    )
    parser.add_argument("--storage", default=None, help="e.g. sqlite:///cartpole.db")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="3 trials of 10 short episodes (seconds)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.n_trials, args.max_episodes, args.report_every, args.max_episode_steps = 3, 10, 5, 50

    torch.set_num_threads(1)
    study = optuna.create_study(
        study_name="boil-cartpole-ddqn",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=BOILSampler(seed=args.seed, n_startup_trials=min(6, args.n_trials)),
        pruner=BOILPruner(min_resource=args.report_every, max_resource=args.max_episodes),
    )
    study.optimize(
        lambda t: objective(t, args.max_episodes, args.report_every, args.max_episode_steps),
        n_trials=args.n_trials,
    )

    episodes = sum(t.last_step or 0 for t in study.trials)
    print(f"{len(study.trials)} trials, {episodes} episodes in total.")
    trial, predicted, std = recommend(study)[:3]
    print(f"Recommended: trial {trial.number} (predicted mean return {predicted:.1f} ± {std:.1f})")
    for name, value in trial.params.items():
        print(f"  {name}: {value:.4g}")


if __name__ == "__main__":
    main()
