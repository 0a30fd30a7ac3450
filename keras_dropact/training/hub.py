"""The Hugging Face Hub side of `dropact publish RUN_DIR hf://USER/NAME`.

Through `huggingface_hub` (the `hub` extra), which finds the user's token
as it always does (`HF_TOKEN`, or `hf auth login`). A repository is
published into only when it is new or empty (`check_empty`: nothing but the
`.gitattributes` the Hub creates); the folder goes up in one commit
(`upload`), which the Hub applies whole or not at all. Every failure of the
Hub (the network, a token, permissions) is one line naming the repository.
"""

from keras_dropact import __version__
from keras_dropact.errors import error_text
from keras_dropact.extras import require

# What the Hub puts into every new repository.
HUB_FILES = (".gitattributes",)


def client():
    """A `huggingface_hub.HfApi` that says it is keras-dropact, or
    MissingExtraError naming the `hub` extra."""
    require("hub", "huggingface_hub", feature="Publishing to hf://")
    import huggingface_hub

    return huggingface_hub.HfApi(library_name="keras-dropact", library_version=__version__)


def check_empty(api, repo_id):
    """Raises FileExistsError if the model repository `repo_id` holds files.

    Raises:
        FileExistsError: it exists and holds files (one line listing some).
        RuntimeError: the Hub cannot be asked (one line).
    """
    files = _call(repo_id, lambda: api.list_repo_files(repo_id)
                  if api.repo_exists(repo_id) else [])
    others = sorted(name for name in files if name not in HUB_FILES)
    if others:
        raise FileExistsError(
            f"hf://{repo_id} already holds files ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}); refusing to publish over them. Publish to "
            "a new or empty repository. Nothing was uploaded."
        )


def upload(api, repo_id, folder, private, message):
    """Creates the model repository `repo_id` if it does not exist and uploads
    `folder` into it in one commit; returns the repository's address."""
    def create_and_upload():
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=message)
        return str(url)

    return _call(repo_id, create_and_upload)


def _call(repo_id, call):
    """`call()`; a failure of the Hub is one RuntimeError line."""
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - HTTP, token, network: all one line.
        raise RuntimeError(
            f"The Hugging Face Hub refused or could not be reached for hf://{repo_id} "
            f"({error_text(error)}). Nothing was published."
        ) from error
