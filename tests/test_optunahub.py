"""The OptunaHub package in ``optunahub/package/samplers/boil`` loads and runs."""

from __future__ import annotations

from pathlib import Path
import re
import runpy
import types

import optuna
import pytest

import optuna_boil


optunahub = pytest.importorskip("optunahub")
# Without the package installed, the repository's optunahub/ folder is imported instead.
if not hasattr(optunahub, "load_local_module"):
    pytest.skip("the optunahub package is not installed", allow_module_level=True)

# ``optunahub.load_local_module(package, registry_root=...)`` imports
# ``os.path.join(registry_root, package, "__init__.py")``: the root is the registry's ``package``
# directory, and the package name is the path below it (``load_module`` does the same with its
# download cache, whose layout mirrors the optunahub-registry repository).
REGISTRY_ROOT = Path(__file__).resolve().parents[1] / "optunahub" / "package"
PACKAGE = "samplers/boil"
PACKAGE_DIR = REGISTRY_ROOT / PACKAGE


def load() -> types.ModuleType:
    return optunahub.load_local_module(PACKAGE, registry_root=str(REGISTRY_ROOT))


def test_reexports_optuna_boil() -> None:
    module = load()
    assert module.__name__ == "optunahub_registry.package.samplers.boil"
    for name in ("BOILSampler", "BOILPruner", "get_budget", "report_cost", "recommend"):
        assert getattr(module, name) is getattr(optuna_boil, name)


def test_loaded_classes_run_a_study() -> None:
    module = load()

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        assert module.get_budget(trial) is not None
        value = 0.0
        for step in range(1, 6):
            value = (1.0 - x**2) * step / 5
            trial.report(value, step)
            module.report_cost(trial, float(step))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=module.BOILSampler(seed=0, n_startup_trials=2),
        pruner=module.BOILPruner(min_resource=1, max_resource=5),
    )
    study.optimize(objective, n_trials=4)
    assert len(study.trials) == 4
    assert all("boil_budget" in t.user_attrs for t in study.trials)
    rec = module.recommend(study)
    assert rec.trial in study.trials and isinstance(rec.value, float)


def test_example_runs_with_the_local_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # example.py calls optunahub.load_module (a download); point it at the local registry.
    monkeypatch.setattr(
        optunahub,
        "load_module",
        lambda package, **kwargs: optunahub.load_local_module(
            package, registry_root=str(REGISTRY_ROOT)
        ),
    )
    namespace = runpy.run_path(str(PACKAGE_DIR / "example.py"), run_name="example")
    module = namespace["module"]
    study = optuna.create_study(
        direction="maximize",
        sampler=module.BOILSampler(seed=0, n_startup_trials=2),
        pruner=module.BOILPruner(min_resource=1, max_resource=namespace["MAX_EPOCHS"]),
    )
    study.optimize(namespace["objective"], n_trials=3)
    assert len(study.trials) == 3


def test_registry_layout() -> None:
    assert {p.name for p in PACKAGE_DIR.iterdir() if not p.name.startswith((".", "__py"))} >= {
        "__init__.py",
        "README.md",
        "LICENSE",
        "example.py",
        "requirements.txt",
    }
    assert (PACKAGE_DIR / "LICENSE").read_text().startswith("MIT License")
    requirements = (PACKAGE_DIR / "requirements.txt").read_text().split()
    assert requirements == ["optuna-boil", "torch", "gpytorch"]

    readme = (PACKAGE_DIR / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", readme, re.DOTALL)
    assert match is not None, "README.md must start with YAML front matter"
    import yaml

    front = yaml.safe_load(match.group(1))
    assert set(front) == {
        "author",
        "title",
        "description",
        "tags",
        "optuna_versions",
        "license",
    }
    assert front["tags"] == ["sampler", "pruner", "multi-fidelity", "gaussian process"]
    assert [str(v) for v in front["optuna_versions"]] == ["5.0.0"]
    assert front["license"] == "MIT License"
    headings = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert headings == ["Abstract", "APIs", "Installation", "Example", "Others"]
    assert re.search(r"</?[a-zA-Z][^>]*>", readme) is None, "no HTML tags in README.md"
