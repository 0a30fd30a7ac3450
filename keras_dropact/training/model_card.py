"""The model card (README.md) of a published model, generated from its metadata.json.

    text = model_card.markdown(metadata, location)

Hugging Face's front matter (`library_name: keras`, the licence, tags, the
pipeline tag and a `model-index` holding the measured test error and
accuracy), then the card: results (and, for a run of `dropact compare`,
its arm's error over the seeds with the 95% interval and the paired
difference to the reference), how to load and call the model, how it
trained, the software. Every figure comes from `metadata` (`publish`), and
so from the run's own records: nothing is typed by hand.

The front matter is YAML written in block style with every value a JSON
scalar (strings in double quotes), which YAML reads unchanged.
"""

import json

PAPER = "https://arxiv.org/abs/1811.05850"
PROJECT = "keras-dropact"
IMAGE_TASK = {"type": "image-classification", "name": "Image Classification"}
SIGNAL_TASK = {"type": "other", "name": "Signal classification"}
# For the text: what each activation of `layers.ACTIVATIONS` is.
ACTIVATION_TEXT = {
    "dropact": "Drop-Activation (p = {p})",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU (slope 1 - p, p = {p})",
    "rrelu": "randomized ReLU",
}


def markdown(metadata, location):
    """README.md of the model `metadata` describes, loaded from `location`
    (the folder or `hf://USER/NAME` it was published to)."""
    return "\n".join([
        "---", *yaml_lines(front_matter(metadata)), "---", "",
        *_summary(metadata), *_results(metadata), *_comparison(metadata),
        *_use(metadata, location), *_training(metadata), *_software(metadata), *_citation(),
    ])


def front_matter(metadata):
    """The Hugging Face metadata of the card, as a dict."""
    error = metadata["test_error"]
    image = metadata["input_dtype"] == "uint8"
    tags = [PROJECT, "drop-activation", metadata["model"], metadata["dataset"],
            metadata["activation"]]
    matter = {"library_name": "keras", "license": metadata["license"],
              "tags": ["keras", *dict.fromkeys(tags)]}
    if image:
        matter["pipeline_tag"] = IMAGE_TASK["type"]
    matter["model-index"] = [{"name": metadata["name"], "results": [{
        "task": dict(IMAGE_TASK if image else SIGNAL_TASK),
        "dataset": {"name": metadata["dataset"], "type": metadata["dataset"], "split": "test"},
        "metrics": [
            {"type": "accuracy", "value": percent(1 - error), "name": "Test accuracy (%)"},
            {"type": "error", "value": percent(error), "name": "Test error (%)"},
        ],
    }]}]
    return matter


def percent(fraction):
    """A fraction as a percentage with two decimals, as the card shows it."""
    return round(100 * fraction, 2)


def yaml_lines(value, indent=""):
    """Block-style YAML lines of nested dicts and lists whose leaves are
    JSON scalars (strings quoted as JSON, which YAML reads as they are)."""
    lines = []
    items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
    for key, item in items:
        head = f"{indent}{key}:" if key is not None else f"{indent}-"
        if isinstance(item, (dict, list)) and item:
            nested = yaml_lines(item, indent + "  ")
            if key is None and isinstance(item, dict):  # "- first: value", the rest under it.
                lines += [f"{head} {nested[0].lstrip()}", *nested[1:]]
            else:
                lines += [head, *nested]
        else:
            lines.append(f"{head} {json.dumps(item)}")
    return lines


def _activation(metadata):
    return ACTIVATION_TEXT.get(metadata["activation"], metadata["activation"]).format(p=metadata["p"])


def _summary(metadata):
    config = metadata["training"]["config"]
    return [
        f"# {metadata['name']}", "",
        f"`{metadata['model']}` with {_activation(metadata)} trained on `{metadata['dataset']}` by "
        f"`dropact train` ({PROJECT} {metadata['training_versions']['keras_dropact']}, Keras "
        f"{metadata['training_versions']['keras']} on {config['backend'] or 'tensorflow'}), published "
        f"with `dropact publish`. Drop-Activation: Liang, Khoo, Yang, [arXiv 1811.05850]({PAPER}).", "",
    ]


def _results(metadata):
    rows = [("test error", f"{percent(metadata['test_error']):.2f}% on the "
                           f"{metadata['test_examples']:,} test examples of `{metadata['dataset']}`"),
            ("test loss", "-" if metadata["test_loss"] is None else f"{metadata['test_loss']:.4f}"),
            ("trainable parameters", f"{metadata['trainable_parameters']:,}")]
    return ["## Results", "", *_table(rows), ""]


def _comparison(metadata):
    """The comparison's figures for the run's arm, if it came from `dropact compare`."""
    comparison = metadata["comparison"]
    if comparison is None:
        return []
    arm, summary = comparison["arm"], comparison["test_error"]
    text = [
        "## Across seeds (`dropact compare`)", "",
        f"This model is the run of seed {metadata['training']['config']['seed']} of the arm "
        f"`{arm}` in the comparison", "", f"    {comparison['command']}", "",
        f"Over its {summary['n']} finished seeds, the arm's test error is "
        f"{_interval(summary)}% (mean +- half width of the 95% Student-t interval over the seeds).",
    ]
    difference = comparison["difference_to_reference"]
    if difference is not None:
        text.append(
            f"Its difference to the reference `{comparison['reference']}`, seed by seed, is "
            f"{_interval(difference)} points (below 0: a lower error), lower in "
            f"{difference['lower']} of {difference['n']} seeds.")
    return [*text, ""]


def _interval(summary):
    """"12.34 +- 0.56" in percent; "12.34" for one seed (no interval)."""
    if summary["half_width"] is None:
        return f"{100 * summary['mean']:.2f}"
    return f"{100 * summary['mean']:.2f} +- {100 * summary['half_width']:.2f}"


def _use(metadata, location):
    shape = ", ".join(str(d) for d in metadata["input_shape"])
    names = metadata["class_names"]
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    value_range = metadata["input_range"]
    inputs = (f"the raw values {value_range[0]:g}..{value_range[1]:g} as `{metadata['dataset']}` "
              "stores them" if value_range else "the signals as generated")
    return [
        "## Use", "",
        "```python", "import keras_dropact", "",
        f"model = keras_dropact.models.from_preset({json.dumps(location)})",
        f"metadata = keras_dropact.models.preset_metadata({json.dumps(location)})",
        "logits = model.predict(images)",
        'names = [metadata["class_names"][i] for i in logits.argmax(-1)]', "```", "",
        f"`images`: {metadata['input_dtype']} [batch, {shape}], {inputs}. The model normalises "
        f"them itself ({metadata['normalisation']}) and returns logits over "
        f"{len(names)} classes: {shown}.",
        "In inference (`predict`, `training=False`) each Drop-Activation is its expectation "
        "(paper eq. 5), y = (1 - p) x + p f(x); `training=True` draws its random masks (eq. 3).", "",
    ]


def _training(metadata):
    training = metadata["training"]
    config, recipe = training["config"], training["recipe"]
    schedule = ", ".join(str(m) for m in recipe["milestones"]) or "none"
    rows = [
        ("configuration", ", ".join(f"{key} {value}" for key, value in config.items()
                                    if key not in ("run_dir", "data_dir") and value not in (None, False))),
        ("recipe", f"{config['recipe']}: {recipe['epochs']} epochs, batch {recipe['batch_size']}, "
                   f"{recipe['optimizer']} lr {recipe['lr']:g}, decays at epochs {schedule} "
                   f"(x{recipe['gamma']:g}), weight decay {recipe['weight_decay']:g}"),
        ("trained", f"{training['epochs_completed']} epochs, {training['optimizer_steps']:,} "
                    f"optimizer steps, {training['train_seconds']:.0f} s"),
    ]
    return ["## Training", "", *_table(rows), ""]


def _software(metadata):
    trained, published = metadata["training_versions"], metadata["versions"]
    rows = [(name, f"{trained.get(name, '-')} / {published.get(name, '-')}")
            for name in dict.fromkeys([*trained, *published])]
    return ["## Software (trained / published)", "", *_table(rows), ""]


def _citation():
    return ["## Citation", "", "Senwei Liang, Yuehaw Khoo, Haizhao Yang. *Drop-Activation: "
            "Implicit Parameter Reduction and Harmonic Regularization.* "
            f"[arXiv 1811.05850]({PAPER}).", ""]


def _table(rows):
    return ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)]
