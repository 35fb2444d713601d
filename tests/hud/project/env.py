from workbench import Environment, answer, call

env = Environment("letter-project")


@env.tool()
def count_letter(text: str, letter: str) -> int:
    """Count occurrences of a letter in text."""
    return text.lower().count(letter.lower())


@env.scenario("count")
async def count(word: str, letter: str):
    answer_text = yield f"How many '{letter}' in '{word}'?"
    correct = str(word.lower().count(letter.lower()))
    yield 1.0 if answer_text and correct in answer_text else 0.0


@env.policy("expert")
def expert(ctx):
    if ctx.step == 0:
        return call("count_letter", text=ctx.args["word"], letter=ctx.args["letter"])
    return answer(str(ctx.last_result))
