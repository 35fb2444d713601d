"""The README's main job: the whole Loop on the CPU, with the bundled model."""

import pytest

import workbench

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


async def test_the_loop_lifts_held_out_success_with_non_overlapping_intervals(store):
    said = []
    result = await workbench.run_loop(say=said.append)
    assert [s[:3] for s in said] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    board = result.leaderboard.set_index("model")
    base, trained = board.loc["local:smollm2-135m"], board.loc[result.fork]
    assert base["runs"] == trained["runs"] == 60
    assert trained["success_low"] > base["success_high"], result.leaderboard.to_string()
    assert result.separated and result.better  # paired by task, the interval excludes 0
    # the checkpoint remembers its data and its held-out result
    ckpt = workbench.checkpoints(result.fork)[0]
    assert ckpt.manifest["data"]["jobs"] == [result.teacher.id]
    assert ckpt.evals["arithmetic-heldout"]["success_rate"] == trained["success_rate"]
