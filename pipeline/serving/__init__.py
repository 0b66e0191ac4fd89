"""The trained models where faces are: photographs, video files and an HTTP server. Faces are found,
cropped like the competitions' images, predicted in batches and drawn (faces.py), the same way
whichever way they arrive.

Public: faces.load_predictor, faces.describe_faces, faces.answer_faces, faces.annotate, photos.run,
video.run, server.create_app, server.serve, server.run_summary, uploads.decode_image.
"""
