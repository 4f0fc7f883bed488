import os

# Progress bars would flood pytest's captured output.
os.environ.setdefault("TQDM_DISABLE", "1")
