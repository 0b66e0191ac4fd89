"""Using a trained run: reading its folder, predicting with test-time augmentation, and what leaves
the project (the Kaggle CSV, the upload, the exported model).

Public:
- rundir.RunDir: the one reader of a run folder (model, params, predictor, TTA, members, metrics);
- tta.predict_batches, tta.predict_keypoints, tta.predict_probabilities: the one prediction path;
- predict.run (the predict stage), submission.run (the CSV), submit.upload (checked, then sent);
- export.export (Keras, SavedModel, ONNX; savedmodel.py is where `tf.*` is the point).
"""
