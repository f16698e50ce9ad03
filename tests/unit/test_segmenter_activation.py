"""How far an activation's cursor may move while its chunks commit out of order."""

from recupero_segmenter.adapters.repository import Chunk
from recupero_segmenter.handlers import ActivationProgress


def test_the_cursor_only_passes_chunks_that_all_committed() -> None:
    chunks = [Chunk(None, "D10", 10), Chunk("D10", "D20", 10), Chunk("D20", "D25", 5)]
    progress = ActivationProgress(chunks, evaluated_before=100)
    # The second chunk commits first: nothing before it is done, the cursor stays.
    assert progress.done_with(1) == (None, 100)
    progress.committed(1)
    # Then the first: the cursor jumps over both.
    assert progress.done_with(0) == ("D20", 120)
    progress.committed(0)
    assert progress.done_with(2) == ("D25", 125)
