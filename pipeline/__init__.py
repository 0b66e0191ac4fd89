"""Kaggle face competitions pipeline: facial keypoints and FER2013/FERPlus expressions."""
from . import runtime

runtime.configure()
