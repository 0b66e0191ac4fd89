"""The defaults and choices of every option that is not a training option (those are recipes.py's),
read alike by the command line, stages.Pipeline and the stage functions. Plain data."""
from pipeline.core.recipes import BASE

SOURCES = ("auto", "kaggle", "sample")   # download: auto = files already there, else Kaggle, else the sample
SOURCE = "auto"
SAMPLE_SIZE = 1.0                        # the built-in sample's size, a fraction of sample.SampleSizes()
SEED = BASE["seed"]

LABEL_SETS = ("fer2013", "ferplus")      # clean --labels
LABELS = "fer2013"
KEYPOINT_RANGES = ("image", "data")      # scale --keypoint-range
KEYPOINT_RANGE = "image"

PREDICT_BATCH_SIZE = 256                 # speed only: predictions do not depend on it

EXPORT_FORMATS = ("keras", "savedmodel", "onnx")
EXPORT = ("keras", "savedmodel")

LATEST, BEST = "latest", "best"          # --run: besides a run folder's name
RUN = LATEST
HOST, PORT = "127.0.0.1", 8000           # run.py serve: loopback unless asked (README: a proxy in front first)
EVERY = 1                                # run.py predict-video: predict every Nth frame
