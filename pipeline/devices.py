"""Which accelerator the active Keras backend will use (reported, never chosen: Keras picks the GPU)."""


def describe():
    import keras

    backend = keras.config.backend()
    try:
        if backend == "jax":
            import jax

            devices = [d.platform.upper() for d in jax.devices()]
        elif backend == "tensorflow":
            import tensorflow as tf

            devices = ["GPU"] * len(tf.config.list_physical_devices("GPU")) or ["CPU"]
        else:
            devices = ["?"]
    except Exception:  # reporting must never stop training
        devices = ["?"]
    kind = "GPU" if "GPU" in devices else devices[0]
    return f"{backend} backend on {kind}" + (f" x{devices.count('GPU')}" if devices.count("GPU") > 1 else "")
