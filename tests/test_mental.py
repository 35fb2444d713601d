"""The mental family: exact rewards, disjoint shipped tasksets, policies for tests."""

from pathlib import Path

import pytest

import workbench
from environments.mental import env
from environments.mental.make_tasksets import mental_heldout, mental_train
from workbench.errors import ScenarioArgumentError

TASKSETS = Path(__file__).resolve().parent.parent / "environments" / "mental" / "tasksets"


async def grade(task, answer):
    episode = env.episode(task)
    await episode.start()
    reward, info = await episode.grade(answer)
    return reward, info


async def test_the_reward_is_the_last_number_exactly():
    task = env.task("solve", a=7, op="+", b=5)
    assert (await grade(task, "7 + 5 = 12"))[0] == 1.0
    assert (await grade(task, "12."))[0] == 1.0
    assert (await grade(task, "It is 12, not 13"))[0] == 0.0
    assert (await grade(task, "twelve"))[1]["reason"] == "no number in the answer"
    assert (await grade(env.task("solve", a=3, op="-", b=5), "-2"))[0] == 1.0
    with pytest.raises(ScenarioArgumentError, match="'a'"):
        env.task("solve", a=10, op="+", b=1)
    with pytest.raises(ScenarioArgumentError, match="'op'"):
        env.task("solve", a=1, op="*", b=1)


def test_the_shipped_tasksets_are_disjoint_and_match_their_script():
    train, heldout = mental_train(), mental_heldout()
    for made in (train, heldout):
        shipped = workbench.Taskset.load_jsonl(TASKSETS / f"{made.name}.jsonl")
        assert [t.to_dict() for t in made] == [t.to_dict() for t in shipped]
    assert (len(train), len(heldout)) == (87, 30)

    def problem(task):  # 3 + 8 and 8 + 3 are one problem
        a, op, b = task.args["a"], task.args["op"], task.args["b"]
        return (min(a, b), max(a, b), op) if op == "+" else (a, b, op)

    assert not {problem(t) for t in train} & {problem(t) for t in heldout}
    assert all(t.args["a"] > t.args["b"] for t in [*train, *heldout] if t.args["op"] == "-")


async def test_the_expert_solves_everything_and_the_coin_leaves_a_spread_in_groups():
    expert = await workbench.evaluate("mental-heldout", "scripted:expert")
    assert expert.leaderboard()["success_rate"].item() == 1.0
    coin = await workbench.evaluate("mental-heldout", "scripted:coin", group_size=8)
    rate = coin.leaderboard()["success_rate"].item()
    assert 0.3 < rate < 0.7
    again = await workbench.evaluate("mental-heldout", "scripted:coin", group_size=8)
    assert {(t.task, t.group_index, t.reward) for t in again.traces()} == {
        (t.task, t.group_index, t.reward) for t in coin.traces()
    }
