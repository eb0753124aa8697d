"""Session-wide test settings. ``tests`` is a package: pytest puts the repository root on sys.path,
and every test helper is imported as ``tests.<dir>.<module>`` (also by spawned rank processes,
which inherit the path)."""
import os

# Never let a test reach for the Hugging Face Hub (no network on CI).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
