"""Send image files to a model served by TF Serving; print its top classes.

    python examples/tf_serving_client.py http://localhost:8501/v1/models/r164 cat.png dog.jpg

The model is a `dropact export` SavedModel. Each file's bytes go as they are
(base64, `{"b64": ...}`) to the `serve_image_bytes` signature, which decodes,
resizes, maps the file's 8-bit pixels to the dataset's stored range and
normalises them inside the graph, so this client does no image processing
and needs only the Python standard library.
"""

import argparse
import base64
import json
import sys
import urllib.request

SIGNATURE = "serve_image_bytes"


def request_body(paths):
    """The REST `predict` body: one `{"b64": ...}` instance per file."""
    instances = []
    for path in paths:
        with open(path, "rb") as f:
            instances.append({"b64": base64.b64encode(f.read()).decode("ascii")})
    return {"signature_name": SIGNATURE, "instances": instances}


def predict(model_url, paths, timeout=30):
    """POSTs the files to MODEL_URL:predict; returns one dict per file
    (class_id, class_name, probabilities, top_k_ids, top_k_names, ...)."""
    data = json.dumps(request_body(paths)).encode()
    request = urllib.request.Request(
        f"{model_url}:predict", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)["predictions"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_url", help="e.g. http://localhost:8501/v1/models/NAME")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    for path, prediction in zip(args.images, predict(args.model_url, args.images)):
        print(path)
        for name, score in zip(prediction["top_k_names"], prediction["top_k_scores"]):
            print(f"  {score:.4f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
