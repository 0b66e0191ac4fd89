"""From Kaggle's files to training arrays, in the order the data flows:
download (Kaggle, your files or the built-in sample) -> data/raw/ -> clean -> data/interim/ ->
scale -> data/processed/ -> splits (which rows train and which validate).

Public:
- download.run, download.to_import; kaggle_api (the only module that talks to Kaggle);
  archives.extract_nested; sample.write_sample (the built-in sample);
- clean.run (csvfiles.read_csv and pixels.parse_pixel_strings read the CSVs);
- scale.run, scale.KeypointScaling, scale.to_unit;
- splits.load_training_data, splits.TrainingData, splits.split_indices;
- mirror.flip_images, mirror.flip_keypoints (training and test-time augmentation both mirror).
"""
