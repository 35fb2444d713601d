"""RunConfig: every option of a job, with its default and its bounds, in one place.

The API (:func:`workbench.evaluate`), the CLI (``workbench eval``) and the run dialog fill
one :class:`RunConfig` with what the user set (``None`` means unset); it is stored with the
job (as JSON) and read again by a resume and by every backend.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from workbench.agent import DEFAULT_MAX_STEPS
from workbench.errors import OptionsError, one_line
from workbench.models import ALIASES, Sampling


class RunConfig(pydantic.BaseModel):
    """Everything that configures a job: the API, the CLI and the run dialog all fill this.

    The one home of every option's default and bounds: the API and the CLI pass only what
    the user set. An unknown option is an error naming the closest valid one.
    """

    model_config = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)

    models: list[str] = pydantic.Field(min_length=1)
    group_size: int = pydantic.Field(1, ge=1, le=100_000, description="runs per task per model")
    max_steps: int = pydantic.Field(DEFAULT_MAX_STEPS, ge=1, le=10_000)
    max_concurrent: int = pydantic.Field(16, ge=1, le=100_000)
    timeout: float | None = pydantic.Field(None, gt=0, description="seconds per run")
    task_ids: list[str] | None = None
    temperature: float | None = pydantic.Field(None, ge=0, le=2)
    top_p: float | None = pydantic.Field(None, gt=0, le=1)
    max_tokens: int | None = pydantic.Field(None, ge=1, le=1_000_000)
    seed: int | None = None
    backend: Literal["asyncio", "ray"] = pydantic.Field(
        "asyncio", description="asyncio: this process; ray: actors on a Ray cluster"
    )
    address: str | None = pydantic.Field(
        None, description="Ray cluster address (ray backend); None: a local Ray on 127.0.0.1"
    )
    workers: int | None = pydantic.Field(
        None, ge=1, le=10_000, description="Ray actors (ray backend); None: one per CPU"
    )
    runtime: Literal["isolated", "inprocess", "subprocess", "docker"] | None = pydantic.Field(
        None, description="where environments run; None: each environment's default"
    )

    @classmethod
    def of(cls, **options: Any) -> RunConfig:
        """A config from the options a user set (None means "unset": the default applies);
        bad options raise one :class:`OptionsError` that names every one of them."""
        try:
            return cls(**{k: v for k, v in options.items() if v is not None})
        except pydantic.ValidationError as e:
            raise OptionsError(one_line(e, cls)) from None

    @pydantic.field_validator("models")
    @classmethod
    def _resolve_aliases(cls, models: list[str]) -> list[str]:
        # Stored as what an alias stands for, the id its traces carry, so resume and the
        # leaderboard key on one id.
        models = [ALIASES.get(m, m) for m in models]
        twice = sorted({m for m in models if models.count(m) > 1})
        if twice:  # the job would wait for ever for runs it never starts
            raise ValueError(f"name each model once: {', '.join(twice)} is listed twice")
        return models

    @pydantic.model_validator(mode="after")
    def _ray_options_need_ray(self) -> RunConfig:
        if self.backend != "ray" and (self.address or self.workers):
            raise ValueError(
                "address and workers go with the ray backend (--backend ray, backend='ray')"
            )
        return self

    @property
    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            seed=self.seed,
        )
