"""Supervised fine-tuning (the R1-Distill / Open-R1 SFT step) on the Megatron engine.

``config`` (the typed run config, ``configs/sft/*.yaml``), ``data`` (rows -> token ids with an
assistant-only loss mask), ``trainer`` (one function per rank; checkpoints, validation, resume),
``export`` (run checkpoint -> HF directory). Entry point: ``cli/train_sft.py``.
"""
