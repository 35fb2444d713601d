"""The example environments (shop, arithmetic), used the way a researcher uses them."""

from __future__ import annotations

import json
import random
import statistics
import typing
from pathlib import Path

import pytest

from environments.arithmetic import env as arithmetic
from environments.arithmetic.problems import make_problem
from environments.shop import env as shop
from environments.shop.catalogue import PRODUCTS, ProductName
from workbench.environment import Environment
from workbench.errors import ScenarioArgumentError
from workbench.models.base import RunInfo, Sampling
from workbench.models.scripted import PolicyContext, ScriptedModel
from workbench.tasks import Task, Taskset

ROOT = Path(__file__).resolve().parents[1]
SHOP_BASICS = ROOT / "environments/shop/tasksets/shop-basics.jsonl"
ARITHMETIC_BASICS = ROOT / "environments/arithmetic/tasksets/arithmetic-basics.jsonl"
SHIPPED = [SHOP_BASICS, ARITHMETIC_BASICS]
GROUP = range(4)


# -- helpers --------------------------------------------------------------------------------


async def play(env: Environment, task: Task, policy: str, group_index: int = 0, max_steps=10):
    """Play a scripted policy against a fresh episode; returns (reward, info, messages)."""
    ep = env.episode(task)
    messages = await ep.start()
    fn = env.policies[policy]
    for step in range(max_steps):
        ctx = PolicyContext(
            task=task,
            messages=messages,
            tools=env.tool_schemas,
            group_index=group_index,
            rng=random.Random(f"{task.id}-{group_index}-{step}"),
        )
        message = fn(ctx)
        messages.append(message)
        if not message.get("tool_calls"):
            reward, info = await ep.grade(message.get("content"))
            return reward, info, messages
        for tool_call in message["tool_calls"]:
            out = await ep.call_tool(
                tool_call["function"]["name"], tool_call["function"]["arguments"]
            )
            messages.append(
                {"role": "tool", "tool_call_id": tool_call["id"], "content": out.content}
            )
    raise AssertionError(f"{policy} did not answer {task.slug} within {max_steps} steps")


async def mean_reward(path: Path, policy: str) -> float:
    taskset = Taskset.load_jsonl(path)
    rewards = []
    for task in taskset:
        env = task.environment()
        for group_index in GROUP:
            reward, _, _ = await play(env, task, policy, group_index)
            rewards.append(reward)
    return statistics.mean(rewards)


def schema(env: Environment, name: str) -> dict:
    (found,) = [t["function"] for t in env.tool_schemas if t["function"]["name"] == name]
    return found


# -- tools ----------------------------------------------------------------------------------


def test_shop_tool_schemas_are_derived_from_signatures_and_docstrings():
    names = {t["function"]["name"] for t in shop.tool_schemas}
    assert {
        "search_products",
        "view_product",
        "add_to_cart",
        "list_coupons",
        "apply_coupon",
        "view_cart",
        "checkout",
    } <= names
    add = schema(shop, "add_to_cart")
    assert add["description"]
    params = add["parameters"]
    assert params["required"] == ["product_id"]  # quantity has a default, state is hidden
    assert set(params["properties"]) == {"product_id", "quantity"}
    assert params["properties"]["quantity"]["type"] == "integer"
    assert params["properties"]["quantity"]["default"] == 1
    assert all(p["description"] for p in params["properties"].values())
    search = schema(shop, "search_products")
    assert search["parameters"]["required"] == ["query"]
    assert search["parameters"]["properties"]["query"]["type"] == "string"
    assert schema(shop, "checkout")["parameters"]["properties"] == {}
    for tool in shop.tool_schemas:
        assert tool["function"]["description"], tool["function"]["name"]
        assert "state" not in tool["function"]["parameters"].get("properties", {})


def test_arithmetic_offers_one_calculator_tool():
    (tool,) = arithmetic.tool_schemas
    assert tool["function"]["name"] == "calculate"
    assert tool["function"]["parameters"]["required"] == ["expression"]
    assert tool["function"]["parameters"]["properties"]["expression"]["description"]


def test_scenario_names_and_the_catalogue_literal_agree():
    assert set(shop.scenarios) == {"checkout", "price_check", "cheapest_in"}
    assert set(arithmetic.scenarios) == {"solve"}
    assert list(typing.get_args(ProductName)) == [p[1] for p in PRODUCTS]


async def test_search_matches_whole_words_ignoring_case_and_plurals():
    ep = shop.episode(shop.task("price_check", product_name="Desk Lamp"))
    await ep.start()
    laptops = json.loads((await ep.call_tool("search_products", {"query": "LAPTOPS"})).content)
    assert [p["name"] for p in laptops] == ["Ultrabook Laptop", "Gaming Laptop"]
    assert set(laptops[0]) >= {"id", "name", "price", "stock"}
    books = json.loads((await ep.call_tool("search_products", {"query": "book"})).content)
    assert {p["category"] for p in books} == {"books"} and len(books) == 4
    # the product sharing both words comes first
    mice = json.loads((await ep.call_tool("search_products", {"query": "gaming mouse"})).content)
    assert mice[0]["name"] == "Gaming Mouse"
    assert json.loads((await ep.call_tool("search_products", {"query": "unicorn"})).content) == []


async def test_out_of_stock_add_to_cart_is_an_error_and_the_run_goes_on():
    ep = shop.episode(shop.task("checkout", product_name="Wireless Mouse"))
    await ep.start()
    out = await ep.call_tool("add_to_cart", {"product_id": "p02"})  # Gaming Laptop, sold out
    assert out.error is True
    assert "out of stock" in out.content and "Gaming Laptop" in out.content
    unknown = await ep.call_tool("add_to_cart", {"product_id": "p99"})
    assert unknown.error and "unknown product id 'p99'" in unknown.content
    too_many = await ep.call_tool("add_to_cart", {"product_id": "p13", "quantity": 4})
    assert too_many.error and "only 3" in too_many.content
    bad_args = await ep.call_tool("add_to_cart", {"quantity": 1})
    assert bad_args.error and "product_id" in bad_args.content
    # the run goes on: the right product can still be bought
    assert not (await ep.call_tool("add_to_cart", {"product_id": "p03"})).error
    placed = await ep.call_tool("checkout", {})
    assert not placed.error and json.loads(placed.content)["total"] == 24.99
    reward, info = await ep.grade("bought it")
    assert reward == 1.0, info


async def test_checkout_scenario_rewards_the_purchase_with_a_coupon():
    task = shop.task("checkout", product_name="Gaming Mouse", apply_coupon=True)
    ep = shop.episode(task)
    messages = await ep.start()
    assert messages == [
        {"role": "user", "content": "Buy the Gaming Mouse and use a coupon that applies to it."}
    ]
    await ep.call_tool("add_to_cart", {"product_id": "p04"})
    coupon = await ep.call_tool("apply_coupon", {"code": "tech20"})
    assert not coupon.error and json.loads(coupon.content)["cart"]["total"] == 39.99
    placed = json.loads((await ep.call_tool("checkout", {})).content)
    assert placed["coupon"] == "TECH20" and placed["total"] == 39.99
    reward, info = await ep.grade(f"Order {placed['order_id']} placed.")
    assert reward == 1.0 and info["reason"]


async def test_checkout_scenario_scores_zero_without_the_asked_for_coupon():
    ep = shop.episode(shop.task("checkout", product_name="Gaming Mouse", apply_coupon=True))
    await ep.start()
    await ep.call_tool("add_to_cart", {"product_id": "p04"})
    await ep.call_tool("checkout", {})
    reward, info = await ep.grade("done")
    assert reward == 0.0 and "coupon" in info["reason"]


@pytest.mark.parametrize(
    ("calls", "reason"),
    [
        ([], "no order"),
        ([("add_to_cart", {"product_id": "p04"}), ("checkout", {})], "Gaming Mouse x1"),
        ([("add_to_cart", {"product_id": "p03", "quantity": 2}), ("checkout", {})], "x2"),
        (
            [("add_to_cart", {"product_id": "p03"}), ("checkout", {})] * 2,
            "2 orders",
        ),
        (
            [
                ("add_to_cart", {"product_id": "p03"}),
                ("apply_coupon", {"code": "SAVE10"}),
                ("checkout", {}),
            ],
            "none was asked",
        ),
    ],
)
async def test_checkout_scenario_scores_zero_for_the_wrong_purchase(calls, reason):
    ep = shop.episode(shop.task("checkout", product_name="Wireless Mouse"))
    await ep.start()
    for name, arguments in calls:
        assert not (await ep.call_tool(name, arguments)).error
    reward, info = await ep.grade("done")
    assert reward == 0.0 and reason in info["reason"]


async def test_coupons_that_do_not_fit_the_cart_are_errors():
    ep = shop.episode(shop.task("checkout", product_name="Python Cookbook", apply_coupon=True))
    await ep.start()
    empty = await ep.call_tool("apply_coupon", {"code": "SAVE10"})
    assert empty.error and "empty" in empty.content
    await ep.call_tool("add_to_cart", {"product_id": "p12"})
    tech = await ep.call_tool("apply_coupon", {"code": "TECH20"})
    assert tech.error and "electronics" in tech.content
    big = await ep.call_tool("apply_coupon", {"code": "BIG25"})
    assert big.error and "subtotal" in big.content
    assert (await ep.call_tool("apply_coupon", {"code": "NOPE"})).error
    books = json.loads((await ep.call_tool("apply_coupon", {"code": "BOOKS15"})).content)
    assert books["cart"]["discount"] == 6.38 and books["cart"]["total"] == 36.12
    codes = {c["code"] for c in json.loads((await ep.call_tool("list_coupons", {})).content)}
    assert {"SAVE10", "TECH20"} <= codes
    assert (await ep.grade("not bought"))[0] == 0.0


async def test_checkout_with_an_empty_cart_is_an_error():
    ep = shop.episode(shop.task("checkout", product_name="Desk Lamp"))
    await ep.start()
    out = await ep.call_tool("checkout", {})
    assert out.error and "empty" in out.content
    assert json.loads((await ep.call_tool("view_cart", {})).content)["items"] == []


@pytest.mark.parametrize(
    ("answer", "reward"),
    [("Sorry, the Gaming Laptop is out of stock.", 1.0), ("I bought it.", 0.0), ("", 0.0)],
)
async def test_a_sold_out_product_is_reported_not_bought(answer, reward):
    ep = shop.episode(shop.task("checkout", product_name="Gaming Laptop"))
    await ep.start()
    assert (await ep.grade(answer))[0] == reward


@pytest.mark.parametrize(
    ("answer", "reward"),
    [
        ("$34.90", 1.0),
        ("It costs 34.9 dollars.", 1.0),
        ("Was $40, now $34.90", 1.0),
        ("$34.90, or 35 with tax", 0.0),
        ("About $35", 0.0),
        ("I don't know", 0.0),
        (None, 0.0),
    ],
)
async def test_price_check_reads_the_last_number_to_the_cent(answer, reward):
    ep = shop.episode(shop.task("price_check", product_name="Desk Lamp"))
    messages = await ep.start()
    assert messages[0]["content"] == "What does the Desk Lamp cost? Answer with the price only."
    assert (await ep.grade(answer))[0] == reward


async def test_price_check_reads_thousands_separators():
    ep = shop.episode(shop.task("price_check", product_name="Gaming Laptop"))
    await ep.start()
    assert (await ep.grade("$1,299.00"))[0] == 1.0


async def test_cheapest_in_wants_the_cheapest_product_in_stock():
    task = shop.task("cheapest_in", category="books")
    ep = shop.episode(task)
    await ep.start()
    await ep.call_tool("add_to_cart", {"product_id": "p15"})  # p14 is cheaper but sold out
    await ep.call_tool("checkout", {})
    assert (await ep.grade("done"))[0] == 1.0
    wrong = shop.episode(task)
    await wrong.start()
    await wrong.call_tool("add_to_cart", {"product_id": "p12"})
    await wrong.call_tool("checkout", {})
    reward, info = await wrong.grade("done")
    assert reward == 0.0 and info["expected"] == "Science Fiction Anthology"


async def test_every_episode_gets_a_fresh_shop():
    task = shop.task("checkout", product_name="Learning Python")
    first, second = shop.episode(task), shop.episode(task)
    await first.start()
    await second.start()
    for _ in range(3):
        assert not (await first.call_tool("add_to_cart", {"product_id": "p13"})).error
    await first.call_tool("checkout", {})  # sells out Learning Python in the first shop only
    assert first.state is not second.state
    assert json.loads((await second.call_tool("view_cart", {})).content)["items"] == []
    assert (
        json.loads((await second.call_tool("view_product", {"product_id": "p13"})).content)["stock"]
        == 3
    )
    third = shop.episode(task)
    await third.start()
    assert third.state.orders == [] and third.state.products["p13"].stock == 3


# -- scenario arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "scenario", "args", "named"),
    [
        (shop, "checkout", {"product_name": "Unicorn"}, "product_name"),
        (shop, "checkout", {}, "product_name"),
        (shop, "checkout", {"product_name": "Desk Lamp", "coupon": True}, "coupon"),
        (shop, "checkout", {"product_name": "Desk Lamp", "apply_coupon": "maybe"}, "apply_coupon"),
        (shop, "cheapest_in", {"category": "toys"}, "category"),
        (arithmetic, "solve", {"seed": "seven"}, "seed"),
        (arithmetic, "solve", {"seed": 1, "difficulty": 5}, "difficulty"),
    ],
)
def test_a_bad_scenario_argument_is_an_error_naming_it(env, scenario, args, named):
    with pytest.raises(ScenarioArgumentError, match=f"'{named}'"):
        env.task(scenario, **args)


def test_tasks_get_readable_default_slugs():
    assert shop.task("checkout", product_name="Gaming Mouse", apply_coupon=True).slug == (
        "checkout-gaming-mouse-apply-coupon"
    )
    task = arithmetic.task("solve", seed=3, difficulty=2)
    assert (task.env, task.slug, task.args) == (
        "arithmetic",
        "solve-3-2",
        {"seed": 3, "difficulty": 2},
    )


# -- arithmetic -----------------------------------------------------------------------------


async def _prompt(task: Task) -> str:
    ep = arithmetic.episode(task)
    return (await ep.start())[0]["content"]


async def test_arithmetic_problems_are_made_from_the_seed():
    task = arithmetic.task("solve", seed=42)
    first, second = await _prompt(task), await _prompt(task)
    assert first == second
    assert first.startswith("What is ") and first.endswith("? Answer with just the number.")
    prompts = {await _prompt(arithmetic.task("solve", seed=s)) for s in range(20)}
    assert len(prompts) > 15  # different seeds, different problems


@pytest.mark.parametrize("seed", range(25))
def test_arithmetic_difficulty_levels(seed):
    tiny, easy, medium, hard = (make_problem(seed, d).expression for d in (0, 1, 2, 3))
    assert all(0 < int(n) < 10 for n in tiny.split()[::2]) and make_problem(seed, 0).answer >= 0
    assert easy.count(" ") == 2 and easy.split()[1] in "+-"
    assert all(0 < int(n) < 100 for n in easy.split()[::2])
    assert make_problem(seed, 1).answer >= 0
    assert medium.count(" ") == 4 and "*" in medium and "(" not in medium
    assert hard.count("(") >= 1 and sum(hard.count(op) for op in "+-*") == 3


@pytest.mark.parametrize(
    ("answer", "reward"),
    [
        ("{n}", 1.0),
        ("The answer is {n}.", 1.0),
        ("{a} = {n}", 1.0),
        ("{n}.0", 1.0),
        ("{m}", 0.0),
        ("{n} or maybe {m}", 0.0),
        ("I think it is big", 0.0),
        ("", 0.0),
    ],
)
async def test_arithmetic_reward_reads_the_last_number(answer, reward):
    problem = make_problem(5, 1)
    ep = arithmetic.episode(arithmetic.task("solve", seed=5))
    await ep.start()
    text = answer.format(n=problem.answer, m=problem.answer + 1, a=problem.expression)
    got, info = await ep.grade(text)
    assert got == reward
    assert info["expected"] == problem.answer


async def test_arithmetic_reward_takes_negative_answers():
    seed = next(s for s in range(100) if make_problem(s, 3).answer < 0)
    ep = arithmetic.episode(arithmetic.task("solve", seed=seed, difficulty=3))
    await ep.start()
    assert (await ep.grade(f"It is {make_problem(seed, 3).answer}"))[0] == 1.0


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("17 + 25", "42"),
        ("(3 + 4) * 5 - 6", "29"),
        ("7 / 2", "3.5"),
        ("-2 * (1 - 4)", "6"),
        ("0.1 + 0.2", "0.3"),
    ],
)
async def test_calculate_evaluates_arithmetic(expression, value):
    ep = arithmetic.episode(arithmetic.task("solve", seed=1))
    await ep.start()
    out = await ep.call_tool("calculate", {"expression": expression})
    assert (out.error, out.content) == (False, value)


@pytest.mark.parametrize(
    "expression",
    ["__import__('os')", "2 ** 10", "open('x')", "x + 1", "1 / 0", "3 +", "[1, 2]", "True + 1"],
)
async def test_calculate_rejects_anything_but_arithmetic(expression):
    ep = arithmetic.episode(arithmetic.task("solve", seed=1))
    await ep.start()
    out = await ep.call_tool("calculate", {"expression": expression})
    assert out.error is True and "ValueError" in out.content


# -- shipped tasksets -----------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_tasksets_load_and_validate(path):
    taskset = Taskset.load_jsonl(path)
    assert taskset.name == path.stem and 8 <= len(taskset) <= 12
    for task in taskset:
        task.validate_args()
        env = task.environment()
        assert task.slug == env.task(task.scenario, **task.args).slug  # the library's default
    assert len({t.scenario for t in taskset}) == len(task.environment().scenarios)


def test_shipped_tasksets_match_their_generating_scripts():
    from environments.arithmetic.make_tasksets import (
        arithmetic_basics,
        arithmetic_heldout,
        arithmetic_train,
    )
    from environments.shop.make_tasksets import shop_basics

    made = (shop_basics(), arithmetic_basics(), arithmetic_train(), arithmetic_heldout())
    for taskset in made:
        path = ROOT / "environments" / taskset.name.split("-")[0] / "tasksets"
        shipped = Taskset.load_jsonl(path / f"{taskset.name}.jsonl")
        assert [t.to_dict() for t in taskset] == [t.to_dict() for t in shipped], taskset.name


def test_shop_basics_mixes_scenarios_and_coupons():
    tasks = list(Taskset.load_jsonl(SHOP_BASICS))
    assert sum(1 for t in tasks if t.args.get("apply_coupon")) >= 2
    difficulties = [t.args["difficulty"] for t in Taskset.load_jsonl(ARITHMETIC_BASICS)]
    assert difficulties.count(0) > difficulties.count(2) > 0 and difficulties.count(1) > 0


# -- scripted policies ----------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
async def test_the_expert_solves_every_shipped_task(path):
    for task in Taskset.load_jsonl(path):
        env = task.environment()
        for group_index in GROUP:
            reward, info, messages = await play(env, task, "expert", group_index)
            assert reward == 1.0, (task.slug, group_index, info, messages)


async def test_the_arithmetic_expert_answers_in_one_turn_without_tools():
    for task in Taskset.load_jsonl(ARITHMETIC_BASICS):
        _, _, messages = await play(arithmetic, task, "expert")
        assert [m["role"] for m in messages] == ["user", "assistant"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
async def test_the_weak_policy_is_clearly_worse_but_not_hopeless(path):
    weak = await mean_reward(path, "weak")
    assert 0.0 < weak < 0.8


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
async def test_policies_are_deterministic(path):
    task = Taskset.load_jsonl(path)[1]
    env = task.environment()
    for group_index in GROUP:
        first = await play(env, task, "weak", group_index)
        second = await play(env, task, "weak", group_index)
        assert first == second


async def test_scripted_models_find_the_policies_through_the_task():
    task = Taskset.load_jsonl(SHOP_BASICS)["checkout-gaming-mouse-apply-coupon"]
    ep = shop.episode(task)
    messages = await ep.start()
    completion = await ScriptedModel("expert").complete(
        messages, shop.tool_schemas, Sampling(), RunInfo(task=task, group_index=0)
    )
    (tool_call,) = completion.message["tool_calls"]
    assert tool_call["function"]["name"] == "search_products"
    assert json.loads(tool_call["function"]["arguments"]) == {"query": "Gaming Mouse"}


def test_an_environment_cannot_take_a_name_that_is_taken():
    """Stored tasks name their environment: a notebook's Environment("shop") must not
    silently replace the shipped shop for them."""
    from workbench import Environment
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="name of a shipped environment"):
        Environment("shop")
    first = Environment("twice-here")
    assert Environment("twice-here") is not first  # the same module again: a cell re-run
    namespace = {"__name__": "another_module", "Environment": Environment}
    with pytest.raises(WorkbenchError, match="already exists"):
        exec("Environment('twice-here')", namespace)


@pytest.mark.parametrize("name", ["arithmetic", "mental"])
def test_no_held_out_problem_is_a_training_problem(name):
    """A held-out score counts problems the model never trained on: compared by what the
    model is asked (two arithmetic seeds can pose the same expression), not by task name."""
    from workbench.environments.arithmetic.make_tasksets import expression

    from workbench import load_taskset

    def problem(task):
        return expression(task) if name == "arithmetic" else json.dumps(task.args, sort_keys=True)

    train = [problem(t) for t in load_taskset(f"{name}-train")]
    heldout = [problem(t) for t in load_taskset(f"{name}-heldout")]
    assert len(set(train)) == len(train) and len(set(heldout)) == len(heldout)
    assert not set(train) & set(heldout)
