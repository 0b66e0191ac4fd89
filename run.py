#!/usr/bin/env python
"""Kaggle face competitions pipeline: download -> clean -> scale -> train -> predict -> submission.

    python run.py all                 # both competitions, end to end (built-in sample when offline)
    python run.py train --task keypoints --model kaggle_cnn --epochs 100
    python run.py COMMAND --help      # every option of a stage

The commands live in pipeline/cli/; installed (`pip install -e .`), the same is the `faces` command.
"""
import sys

from pipeline.cli import cli

if __name__ == "__main__":
    sys.exit(cli())
