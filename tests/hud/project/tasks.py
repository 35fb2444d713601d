# A HUD project's tasks.py: tasks from the scenario next door, slugs and columns set after.
from env import count

strawberry_r = count.task(word="strawberry", letter="r")
strawberry_r.slug = "strawberry-r"
strawberry_r.columns = {"category": "repeated-letters", "source": "curated"}

mississippi_s = count.task(word="mississippi", letter="s")
mississippi_s.slug = "mississippi-s"
mississippi_s.columns = {"category": "repeated-letters", "source": "curated"}

abracadabra_a = count.task(word="abracadabra", letter="a")
abracadabra_a.slug = "abracadabra-a"
