"""Ensembles: K runs of one recipe that differ only in their seed, averaged at prediction time.

An ensemble folder (data/runs/<slug>/<model>-x<K>-<hash>/) holds ensemble.json (its member runs,
ordinary run folders beside it), predictor.json, params.json and metrics.json: the validation score
of the averaged prediction under each test-time augmentation, beside each member's own. Members share the
validation rows (the split does not depend on the seed), so the average is judged on rows no member
trained on. Probabilities are averaged for expressions, pixel coordinates for keypoints
(inference/tta.py), and inference/rundir.py reads the folder back.
"""
from pipeline.core.competitions import VALIDATION_METRIC
from pipeline.core.fileio import write_json
from pipeline.core.layout import ENSEMBLE, METRICS, PARAMS, PREDICTOR
from pipeline.data.splits import load_training_data
from pipeline.inference.rundir import RunDir
from pipeline.training.evaluate import final_metrics


def run(competition, processed, ensemble_dir, members, params):
    """Write the ensemble folder for trained `members` (run folders) of `params` (seed = the first's)."""
    members = [RunDir(member) for member in members]
    data = load_training_data(competition.task, processed, params)
    models = [model for member in members for model in member.load_models()]
    metrics = final_metrics(competition.task, models, data, params)
    name = VALIDATION_METRIC[competition.task][0]
    metrics["members"] = {member.name: member.metrics[name] for member in members}
    ensemble_dir.mkdir(parents=True, exist_ok=True)
    write_json(ensemble_dir / ENSEMBLE, {"members": [member.name for member in members]})
    write_json(ensemble_dir / PREDICTOR, members[0].predictor)
    write_json(ensemble_dir / PARAMS, {**params, "ensemble": len(members)})
    write_json(ensemble_dir / METRICS, metrics)
    return metrics
