"""Keypoint specialists: one run on the complete rows, one on every row's 4 common keypoints, merged.

Facial Keypoints Detection's training.csv mixes two annotation schemes: 2,140 rows carry all 15
keypoints, most of the others only the 4 of the second scheme (the eye centres, the nose tip and
the bottom lip: competitions.PARTIAL_KEYPOINTS). The competition's top write-ups trained apart for
the two; `--specialists` does so with two ordinary runs of the same recipe (cached, resumable,
listed by `runs`), told apart by their `specialist` parameter (data/splits.py specialise):
- "complete" trains and validates on the rows with all 30 targets;
- "common" on every row, with only the 4 common keypoints' targets.
The merged model answers the 4 common keypoints from "common" and the other 11 from "complete"
(models.merged_specialists), so predict, TTA, export, photos and the server use it as they use any
run's model. The folder over the two, data/runs/<slug>/<model>-sp2-<hash>/, holds specialists.json
(the members, and the columns taken from "common"), predictor.json, params.json and metrics.json:
the merged model's validation scores on the same validation rows, and targets, as a single run's,
beside each member's own.
"""
from pipeline.core.competitions import PARTIAL_COLUMNS
from pipeline.core.fileio import write_json
from pipeline.core.layout import METRICS, PARAMS, PREDICTOR, SPECIALISTS
from pipeline.core.recipes import SPECIALIST_ROLES
from pipeline.data.splits import load_training_data
from pipeline.inference.rundir import RunDir
from pipeline.training.evaluate import final_metrics



def run(competition, processed, folder, member_dirs, params):
    """Write the specialists folder over the trained runs `member_dirs` (in SPECIALIST_ROLES' order)."""
    members = [RunDir(member) for member in member_dirs]
    folder.mkdir(parents=True, exist_ok=True)
    # first: RunDir reads it to merge the members' models
    write_json(folder / SPECIALISTS, {"members": [member.name for member in members], "roles": list(SPECIALIST_ROLES),
                                      "common_columns": list(PARTIAL_COLUMNS)})
    data = load_training_data(competition.task, processed, params)   # no "specialist": every row and target
    metrics = final_metrics(competition.task, RunDir(folder).load_models(), data, params)
    metrics["members"] = {member.name: member.metrics["val_rmse"] for member in members}
    metrics["train_seconds"] = round(sum(member.metrics.get("train_seconds", 0) for member in members), 1)
    write_json(folder / PREDICTOR, members[0].predictor)
    write_json(folder / PARAMS, params)
    write_json(folder / METRICS, metrics)
    return {key: value for key, value in metrics.items() if key.startswith(("val_rmse", "baseline"))}
