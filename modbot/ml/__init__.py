"""The ML wing: training, export and Keras serving of the medium classifier.

The only package of modbot that imports TensorFlow/Keras, and only when a function needs it
(importing :mod:`modbot.ml` or any of its modules imports no TensorFlow). The served path
(:mod:`modbot.classify`: LiteRT, preprocessing, model-directory layout) lives outside it.

- :mod:`modbot.ml.tf` — :func:`~modbot.ml.tf.load_tensorflow` / ``load_keras`` (one quiet
  import with a thread budget) and :func:`~modbot.ml.tf.quiet_stderr`.
- :mod:`modbot.ml.data` — training trees: :func:`~modbot.ml.data.scan_tree`,
  :func:`~modbot.ml.data.load_split`, :class:`~modbot.ml.data.TrainingDataError`. No TensorFlow.
- :mod:`modbot.ml.metrics` — classification report, temperature fitting, calibration error.
  Numpy only.
- :mod:`modbot.ml.augment` — the training-only augmentation layers.
- :mod:`modbot.ml.backbones` — EfficientNet-Lite0: its ImageNet weights (read from a PyTorch
  file without PyTorch) and its Keras layers; MobileNetV3-Small.
- :mod:`modbot.ml.architectures` — the registry of named architectures and the model builders
  (:func:`~modbot.ml.architectures.build_classifier`).
- :mod:`modbot.ml.training` — :func:`~modbot.ml.training.train_model`, feature caching,
  :func:`~modbot.ml.training.train_on_copies`.
- :mod:`modbot.ml.export` — the checked LiteRT export (:func:`~modbot.ml.export.export_tflite`).
- :mod:`modbot.ml.card` — the generated ``MODEL_CARD.md``.
- :mod:`modbot.ml.evaluate` — scoring a served classifier on a labelled tree, classifying
  single images (``modbot evaluate`` / ``modbot classify``).
- :mod:`modbot.ml.keras_classifier` — :class:`~modbot.ml.keras_classifier.KerasClassifier`,
  the TensorFlow fallback of :func:`modbot.classify.load_classifier`.
"""
