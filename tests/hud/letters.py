"""HUD's documentation example, with only the import changed (`from hud import ...`)."""

from dataclasses import dataclass, field

from mcp_types import TextContent

from workbench import Environment, answer, call

env = Environment("letter-counter")
events: list[str] = []


@env.initialize
async def start_service():
    events.append("initialize")


@env.shutdown
def stop_service():
    events.append("shutdown")


@env.tool()
def count_letter(text: str, letter: str) -> int:
    """Count occurrences of a letter in text."""
    return text.lower().count(letter.lower())


@env.tool()
def admin_reset() -> str:
    """An internal tool the agent must not see."""
    return "reset"


@env.scenario("count", exclude_tools=["admin_*"])
async def count(word: str, letter: str):
    answer_text = yield f"How many '{letter}' in '{word}'?"
    correct = str(word.lower().count(letter.lower()))
    yield 1.0 if answer_text and correct in answer_text else 0.0


@env.template()  # HUD v6's spelling
async def count_letter_v6(word: str = "strawberry", letter: str = "r"):
    answer_text = yield f"How many '{letter}'s are in '{word}'?"
    yield answer_text == str(word.count(letter))  # a bool reward, as HUD's docs write it


@dataclass
class SubScore:
    name: str
    value: float
    weight: float = 1.0


@dataclass
class EvaluationResult:  # the shape of HUD's EvaluationResult
    reward: float
    done: bool = True
    content: str | None = None
    info: dict = field(default_factory=dict)
    subscores: list[SubScore] | None = None


@env.scenario("graded")
async def graded(word: str):
    yield [TextContent(type="text", text=f"Spell '{word}' backwards.")]  # MCP content blocks
    yield EvaluationResult(
        reward=0.5,
        content="half right",
        info={"checked": word},
        subscores=[SubScore("order", 1.0, 0.5), SubScore("case", 0.0, 0.5)],
    )


@env.scenario("scored")
async def scored():
    yield "Say anything."
    yield {"score": 0.25, "info": {"why": "a dict with a score, as HUD v6 accepts"}}


@env.policy("expert")
def expert(ctx):
    if ctx.task.scenario == "count" and ctx.step == 0:
        return call("count_letter", text=ctx.args["word"], letter=ctx.args["letter"])
    if ctx.task.scenario == "count":
        return answer(str(ctx.last_result))
    if ctx.task.scenario == "count_letter_v6":
        word, letter = ctx.args.get("word", "strawberry"), ctx.args.get("letter", "r")
        return answer(str(word.count(letter)))
    return answer("done")
