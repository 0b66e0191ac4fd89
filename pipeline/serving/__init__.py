"""The trained models where faces are: photographs (faces found, cropped like the competitions'
images, predicted in a batch and drawn).

Public: photos.run, photos.load_predictor, photos.describe_faces, photos.annotate.
"""
