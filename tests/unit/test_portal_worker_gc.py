"""A portal worker leaves its start-up objects out of garbage collection (in a process of its own: freezing
is for the life of the process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import gc
    from portal import create_app  # the worker's libraries, loaded as a worker loads them
    from portal.server import YOUNG_OBJECTS_BEFORE_COLLECTION, spare_startup_objects_from_gc

    def full_collection_visits() -> int:
        return sum(len(gc.get_objects(generation)) for generation in range(3))

    before = full_collection_visits()
    spare_startup_objects_from_gc()
    after = full_collection_visits()
    print(before, after, gc.get_freeze_count(), gc.get_threshold()[0] == YOUNG_OBJECTS_BEFORE_COLLECTION)
    """
)


def test_the_objects_a_worker_starts_with_are_left_out_of_full_collections() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    before, after, frozen, threshold_set = int(out[0]), int(out[1]), int(out[2]), out[3] == "True"
    assert before > 20_000, "the portal's libraries alone are tens of thousands of objects"
    assert after < before / 20, f"a full collection still walks {after} of {before} objects"
    assert frozen >= before * 0.9
    assert threshold_set
