"""Training the paper's networks: one run, from its configuration to its results.

    train.train(config)         one run, start to end (`dropact train`, `dropact repro`)
    run.Run                     new / resume / fit: the flow of a run
    strategies.make(strategy)   where it runs: a `runtime.Runtime` of `tf_runtime`
                                (tf.distribute) or `jax_runtime` (keras.distribution)
    numerics                    the dtype policy and op determinism of a run
    run_dir.RunDir              the run directory: paths, lock, its files
    run_files                   atomic writes, strict JSON, checked records, temporaries
    results.Results             results.json, one typed record (`read_results`)
    backups.Backups             resume backups, each holding a `state.TrainingState`
    progress.Progress           the callback in `fit`: steps, backups, epoch files
    counters, stops             time and speed; divergence and signal stops
    config, recipes, schedule,  what a run is, checked (`validate`) before it
    validate                    writes anything
    sources                     what a SOURCE of evaluate/export/predict is
    evaluate, export, predict,  what is done with a trained model
    serving, artifacts

Needs the `train` extra (TensorFlow for tf.data, tf.distribute and SavedModel).
"""

from keras_dropact.extras import require

require("train", "tensorflow", feature="keras_dropact.training")
