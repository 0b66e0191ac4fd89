"""Kaggle face competitions pipeline: facial keypoints and FER2013/FERPlus expressions."""
from pipeline.core import runtime

runtime.configure()
