"""Ensembles: K runs of one recipe that differ only in their seed, averaged at prediction time.

An ensemble folder (data/runs/<slug>/<model>-x<K>-<hash>/) holds ensemble.json (its member runs,
ordinary run folders beside it), predictor.json, params.json and metrics.json: the validation score
of the averaged prediction under each test-time augmentation, beside each member's own. Members share the
validation rows (the split does not depend on the seed), so the average is judged on rows no member
trained on. Probabilities are averaged for expressions, pixel coordinates for keypoints.
"""
from .fileio import read_json, write_json

ENSEMBLE = "ensemble.json"


def outputs(ensemble_dir):
    from .predict import PREDICTOR
    from .train import METRICS, PARAMS

    return [ensemble_dir / name for name in (ENSEMBLE, PREDICTOR, PARAMS, METRICS)]


def is_ensemble(run_dir):
    return (run_dir / ENSEMBLE).exists()


def member_dirs(run_dir):
    """The run folders whose models make up `run_dir`'s predictions (itself, for a single run)."""
    if not is_ensemble(run_dir):
        return [run_dir]
    return [run_dir.parent / name for name in read_json(run_dir / ENSEMBLE)["members"]]


def run(competition, processed, ensemble_dir, members, params):
    """Write the ensemble folder for trained `members` (run folders) of `params` (seed = the first's)."""
    from .competitions import VALIDATION_METRIC
    from .predict import PREDICTOR, load_models
    from .train import METRICS, PARAMS, final_metrics, load_training_data

    data = load_training_data(competition.task, processed, params)
    metrics = final_metrics(competition.task, load_models(members), data, params)
    name = VALIDATION_METRIC[competition.task][0]
    metrics["members"] = {member.name: read_json(member / METRICS)[name] for member in members}
    ensemble_dir.mkdir(parents=True, exist_ok=True)
    write_json(ensemble_dir / ENSEMBLE, {"members": [member.name for member in members]})
    write_json(ensemble_dir / PREDICTOR, read_json(members[0] / PREDICTOR))
    write_json(ensemble_dir / PARAMS, {**params, "ensemble": len(members)})
    write_json(ensemble_dir / METRICS, metrics)
    return metrics
