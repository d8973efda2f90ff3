"""Keep library chatter (weight-loading bars, advisory warnings) out of the user's terminal.

Shared by the CLI verbs that load real models (`emlab run`, `rl`, `hacks eval`, `judge agree`).
"""

from __future__ import annotations

import os


def quiet_libraries() -> None:
    """Silence transformers' logging and progress bars and Python warnings; tokenizers run single-threaded."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import logging

    # peft imports bitsandbytes wherever it is installed, and its CPU backend warns about an optional kernel package
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
