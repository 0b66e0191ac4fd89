"""Fitting a model into a run folder, and everything a training needs.

Public:
- params.resolve: a run's complete options from the user's, a recipe's and the base;
- train.run: one training with validation early stopping, resumable (resume.py);
- ensemble.run: K seeds of one recipe, averaged;
- augment: AugmentConfig, STRENGTHS, Batches (the input path); optimizers: make_optimizer,
  learning_rate, class_weights; validation.Validation; evaluate.final_metrics;
- distribute.placement: one device, mirrored GPUs, several workers (`tf.distribute` lives there).
"""
