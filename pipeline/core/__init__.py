"""The facts and plumbing every other part stands on; imports nothing above it and nothing heavy
(no pandas, Keras or TensorFlow: core.devices alone asks Keras which device it has).

Public:
- competitions: COMPETITIONS, KEYPOINTS, EXPRESSIONS, tasks_for, the keypoint and class names,
  image sizes, Usage codes, submission headers, VALIDATION_METRIC;
- layout: Layout (every folder of a project) and every file name a stage writes;
- recipes: RECIPES, BASE, CHOICES, TTA_VIEWS, default, run_tta (training options, plain data);
- defaults: the defaults and choices of every other option;
- errors: PipelineError, BadInputError, MissingInputError;
- fileio: atomic writes (atomic_path, atomic_open, write_json, save_arrays) and reads;
- cache: Cache, params_hash, stage_lock;
- runtime: configure (TensorFlow's settings before it loads); devices: which accelerator runs;
  hardware: the CPU's flags and whether a GPU is there, read without a backend.
"""
