"""One-line error messages: how the project quotes an exception it wraps.

Every refusal is one line (docs/reference/validation.md), so a wrapped
exception is quoted by its first line only (a Keras or Hub error can run to
pages).
"""


def first_line(error):
    """The first line of `error`'s message, or its type's name if it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def error_text(error):
    """`TypeName: first line`, how a refusal quotes the exception behind it."""
    return f"{type(error).__name__}: {first_line(error)}"
