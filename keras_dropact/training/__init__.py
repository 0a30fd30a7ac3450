"""Training the paper's networks: one run, from its configuration to its results.

    train.train(config)         one run, start to end (`dropact train`, `dropact repro`)
    run.Run                     new / resume / fit: the flow of a run
    runtime.make(strategy)      where it runs: `tf_runtime` (tf.distribute),
                                `jax_runtime` (keras.distribution)
    run_dir.RunDir              the run directory: paths, atomic writes, lock, results
    backups.Backups             resume backups, each holding a `state.TrainingState`
    progress.Progress           the callback in `fit`: steps, backups, epoch files
    counters, stops             time and speed; divergence and signal stops
    config, recipes, schedule,  what a run is, checked (`validate`) before it
    validate                    writes anything
    evaluate, export, predict,  what is done with a trained model
    serving, artifacts

Needs the `train` extra (TensorFlow for tf.data, tf.distribute and SavedModel).
"""

from keras_dropact.extras import require

require("train", "tensorflow", feature="keras_dropact.training")
