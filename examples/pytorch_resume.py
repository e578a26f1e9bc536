"""Continue stopped runs from their checkpoints instead of training them again (freeze-thaw).

The CNN of ``pytorch_schedule.py`` on scikit-learn's digits, with a checkpoint (model and
optimiser state) saved whenever BOIL stops a trial. ``optuna_boil.resume_from(trial)`` says
whether this trial continues an earlier trial's run: then the objective loads that trial's
checkpoint and reports only the epochs after it; the trial has that trial's parameters. Calling
it tells optuna-boil that runs can be continued, so a configuration stopped early costs only its
remaining epochs when the model wants it trained further.

Checkpoints go to files (``--checkpoints DIR``, one file per trial number) or, with
``--artifacts DIR``, to an :mod:`optuna.artifacts` store attached to the trials (what a cluster
with shared storage would use, e.g. an S3 bucket through ``Boto3ArtifactStore``). A checkpoint
is deleted once the trial that continued it has ended PRUNED or COMPLETE: it is never needed
again (a continuation that FAILs leaves it in place, and the run is offered again).

    python examples/pytorch_resume.py                   # 30 trials, up to 24 epochs each
    python examples/pytorch_resume.py --artifacts art   # checkpoints as optuna artifacts
    python examples/pytorch_resume.py --smoke           # 6 tiny trials, seconds
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import tempfile

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import download_artifact
from optuna.artifacts import get_all_artifact_meta
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState
from pytorch_schedule import Data
from pytorch_schedule import load_data
from pytorch_schedule import make_cnn
from pytorch_schedule import train_epoch
import torch

from optuna_boil import BOILPruner
from optuna_boil import BOILSampler
from optuna_boil import resume_from


class Checkpoints:
    """Checkpoints by trial number, in a folder or in an Optuna artifact store.

    Args:
        folder: Where checkpoint files (or the artifact store's files) live.
        artifacts: Keep them as :mod:`optuna.artifacts` of the trials instead of plain files.
    """

    def __init__(self, folder: Path, artifacts: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.store = FileSystemArtifactStore(str(folder)) if artifacts else None

    def save(self, trial: optuna.Trial, state: dict[str, object]) -> None:
        """Save ``state`` as ``trial``'s checkpoint."""
        if self.store is None:
            torch.save(state, self.folder / f"trial_{trial.number}.pt")
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"trial_{trial.number}.pt")
            torch.save(state, path)
            upload_artifact(artifact_store=self.store, file_path=path, study_or_trial=trial)

    def load(self, study: optuna.Study, number: int) -> dict[str, object]:
        """Trial ``number``'s checkpoint."""
        if self.store is None:
            return torch.load(self.folder / f"trial_{number}.pt")
        earlier = study.trials[number]
        (meta,) = get_all_artifact_meta(earlier, storage=study._storage)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, meta.filename)
            download_artifact(
                artifact_store=self.store, file_path=path, artifact_id=meta.artifact_id
            )
            return torch.load(path)

    def delete(self, study: optuna.Study, number: int) -> None:
        """Delete trial ``number``'s checkpoint (a later trial continued its run)."""
        if self.store is None:
            (self.folder / f"trial_{number}.pt").unlink(missing_ok=True)
            return
        for meta in get_all_artifact_meta(study.trials[number], storage=study._storage):
            self.store.remove(meta.artifact_id)


def objective(trial: optuna.Trial, data: Data, max_epochs: int, store: Checkpoints) -> float:
    """Train (or continue training) the CNN and return the final validation accuracy."""
    lr = trial.suggest_float("lr", 1e-3, 3e-1, log=True)
    momentum = trial.suggest_float("momentum", 0.5, 0.99)
    channels = trial.suggest_int("channels", 4, 32, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)

    torch.manual_seed(trial.number)
    model = make_cnn(channels, dropout)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True)
    first = 1
    resume = resume_from(trial)  # after the suggest_* calls
    if resume is not None:
        state = store.load(trial.study, resume.trial_number)
        model.load_state_dict(state["model"])  # type: ignore[arg-type]
        optimiser.load_state_dict(state["optimiser"])  # type: ignore[arg-type]
        first = resume.step + 1

    accuracy = 0.0
    for epoch in range(first, max_epochs + 1):
        accuracy = train_epoch(model, optimiser, data)
        trial.report(accuracy, epoch)
        if trial.should_prune():
            # Stopped: keep the run so that a later trial can continue it.
            store.save(trial, {"model": model.state_dict(), "optimiser": optimiser.state_dict()})
            raise optuna.TrialPruned()
    return accuracy


def forget_continued(store: Checkpoints):  # type: ignore[no-untyped-def]
    """A callback deleting the checkpoint of a run that a trial continued and then ended
    PRUNED (with a checkpoint of its own) or COMPLETE: it is never needed again."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        earlier = trial.user_attrs.get("boil_resumed_from")
        if earlier is not None and trial.state in (TrialState.PRUNED, TrialState.COMPLETE):
            store.delete(study, earlier)

    return callback


def main() -> None:
    """Parse the command line and run the study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=24)
    parser.add_argument("--storage", default=None, help="e.g. sqlite:///resume.db")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", default="checkpoints", help="checkpoint folder")
    parser.add_argument("--artifacts", default=None, help="folder of an optuna artifact store")
    parser.add_argument("--smoke", action="store_true", help="6 trials, 6 epochs, 300 images")
    args = parser.parse_args()
    n_samples = None
    if args.smoke:
        args.n_trials, args.max_epochs, n_samples = 6, 6, 300

    torch.set_num_threads(1)
    data = load_data(n_samples)
    store = Checkpoints(Path(args.artifacts or args.checkpoints), args.artifacts is not None)
    study = optuna.create_study(
        study_name="boil-pytorch-resume",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=BOILSampler(seed=args.seed, n_startup_trials=min(4, args.n_trials)),
        pruner=BOILPruner(min_resource=1, max_resource=args.max_epochs),
    )
    study.optimize(
        lambda t: objective(t, data, args.max_epochs, store),
        n_trials=args.n_trials,
        callbacks=[forget_continued(store)],
    )

    trained = 0
    for t in study.trials:
        first = min(t.intermediate_values) if t.intermediate_values else 0
        trained += len(t.intermediate_values)
        continued = t.user_attrs.get("boil_resumed_from")
        print(
            f"trial {t.number:3d} {t.state.name:8s} epochs {first}-{t.last_step}"
            + (f" (continues trial {continued})" if continued is not None else "")
        )
    resumed = sum("boil_resumed_from" in t.user_attrs for t in study.trials)
    print(f"Epochs trained: {trained}; runs continued from a checkpoint: {resumed}")
    if any(t.state == TrialState.COMPLETE for t in study.trials):
        best = study.best_trial
        print(f"Best COMPLETE trial: {best.number}, accuracy {best.value:.4f}, {best.params}")


if __name__ == "__main__":
    main()
