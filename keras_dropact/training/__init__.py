"""Training the paper's networks: configuration, recipes, `train`, `evaluate`, `export`, distribution.

Needs the `train` extra (TensorFlow for tf.data, tf.distribute and SavedModel).
"""

from keras_dropact.extras import require

require("train", "tensorflow", feature="keras_dropact.training")
